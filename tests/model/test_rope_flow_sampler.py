import pytest
import torch

from model.config import FlowConfig
from model.flow import add_noise, guided_velocity, predicted_x0, sample_timesteps, time_grid, velocity_target
from model.rope import RotaryEmbedding3D, apply_rotary
from model.sampler import sample


def test_rope_scores_depend_only_on_relative_position():
    head_dim = 24
    rope = RotaryEmbedding3D(head_dim)
    rotations = rope((4, 5, 6), torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    q, k = (
        torch.randn(1, 1, 1, head_dim, generator=generator),
        torch.randn(1, 1, 1, head_dim, generator=generator),
    )

    def index(t, h, w):
        return (t * 5 + h) * 6 + w

    def score(a, b):
        qa = apply_rotary(q, rotations[a : a + 1])
        kb = apply_rotary(k, rotations[b : b + 1])
        return (qa * kb).sum().item()

    shift = (1, 2, 3)
    base = score(index(0, 0, 0), index(*shift))
    moved = score(index(2, 1, 1), index(2 + shift[0], 1 + shift[1], 1 + shift[2]))
    assert moved == pytest.approx(base, abs=1e-5)
    assert score(index(0, 0, 0), index(0, 0, 1)) != pytest.approx(base, abs=1e-3)
    norms = apply_rotary(q.expand(1, 120, 1, head_dim), rotations).norm(dim=-1)
    torch.testing.assert_close(norms, q.norm().expand_as(norms))  # a rotation keeps lengths


def test_compiled_rotation_written_with_cos_and_sin_equals_the_complex_one():
    """Under torch.compile the rotation takes its real form; values and gradients match eager's complex form."""
    rotations = RotaryEmbedding3D(24)((2, 3, 4), torch.device("cpu"))
    x = torch.randn(2, 24, 3, 24, generator=torch.Generator().manual_seed(1), requires_grad=True)
    weights = torch.randn(2, 24, 3, 24, generator=torch.Generator().manual_seed(2))
    eager = apply_rotary(x, rotations)
    (eager_grad,) = torch.autograd.grad((eager * weights).sum(), x)
    graphs = []

    def keep_graph(graph: torch.fx.GraphModule, _inputs):  # a backend that runs the traced graph as it is
        graphs.append(graph.code)
        return graph.forward

    torch._dynamo.reset()
    compiled = torch.compile(apply_rotary, backend=keep_graph, fullgraph=True)(x, rotations)
    (compiled_grad,) = torch.autograd.grad((compiled * weights).sum(), x)
    assert "view_as_complex" not in graphs[0]  # the real form
    torch.testing.assert_close(compiled, eager, rtol=0, atol=1e-6)
    torch.testing.assert_close(compiled_grad, eager_grad, rtol=0, atol=1e-6)
    assert (eager - x).abs().max() > 0.1  # positions past the first really rotate


def test_flow_path_recovers_data_from_the_true_velocity():
    generator = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(3, 4, generator=generator), torch.randn(3, 4, generator=generator)
    t = torch.tensor([0.0, 0.5, 1.0])
    x_t = add_noise(x0, noise, t)
    torch.testing.assert_close(x_t[0], x0[0])
    torch.testing.assert_close(x_t[2], noise[2])
    torch.testing.assert_close(predicted_x0(x_t, velocity_target(x0, noise), t), x0)


def test_timestep_samplers_stay_in_range_and_differ():
    config = FlowConfig()
    logit = sample_timesteps(4000, config, torch.device("cpu"), torch.Generator().manual_seed(0))
    config.timestep_sampling = "uniform"
    uniform = sample_timesteps(4000, config, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert 0 < logit.min() and logit.max() < 1 and 0 <= uniform.min() and uniform.max() < 1
    assert logit.std() < uniform.std()  # logit-normal concentrates mass in the middle
    config.timestep_sampling = "cosine"
    with pytest.raises(ValueError, match="timestep_sampling='cosine'"):
        sample_timesteps(1, config, torch.device("cpu"))


def test_time_grid_shift_keeps_endpoints_and_moves_mass_to_high_noise():
    plain, shifted = time_grid(10), time_grid(10, shift=3.0)
    assert plain[0] == shifted[0] == 1 and plain[-1] == shifted[-1] == 0
    assert (shifted[1:-1] > plain[1:-1]).all()
    with pytest.raises(ValueError, match="steps=0"):
        time_grid(0)


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_sampler_transports_noise_to_the_target_along_a_straight_path(method):
    target = torch.tensor([[2.0, -1.0]])

    def velocity_fn(x, t, self_condition):  # the exact velocity field of the straight path to `target`
        v = (x - target) / t
        return v, target

    noise = torch.tensor([[0.5, 0.5]])
    result = sample(velocity_fn, noise, steps=4, method=method)
    torch.testing.assert_close(result, target)
    partly_noised = add_noise(target, noise, torch.tensor([0.4]))  # a solve may start part-way down the path
    torch.testing.assert_close(sample(velocity_fn, partly_noised, steps=3, method=method, start=0.4), target)


def test_sampler_feeds_back_the_previous_estimate():
    seen = []

    def velocity_fn(x, t, self_condition):
        seen.append(self_condition)
        return torch.zeros_like(x), torch.full_like(x, t)

    sample(velocity_fn, torch.zeros(1), steps=3)
    assert seen[0] is None and seen[1].item() == pytest.approx(1.0) and seen[2].item() == pytest.approx(2 / 3)


def test_guidance_formula():
    full, text, null = torch.tensor(3.0), torch.tensor(2.0), torch.tensor(1.0)
    assert guided_velocity(full, None, null, 2.0, None) == 5.0
    assert guided_velocity(full, text, null, 2.0, 3.0) == 1.0 + 2.0 * 1.0 + 3.0 * 1.0
    assert guided_velocity(full, None, None, 7.0, None) == 3.0
