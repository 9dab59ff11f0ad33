"""The real tritonserver on an exported tiny checkpoint (random weights; its text encoder loaded from
a pretrained folder that export bundles): equality with in-process generation, refusal of bad requests without
going down, batching, retries, timeouts, and the CLI."""

import dataclasses
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from components.export import export_model_repository
from model.alchemist import VideoAlchemist
from model.config import preset
from model.encoders.text import minilm_folder
from model.generator import Generator
from model.sampler import StepCache
from pipelines.cli import app
from serving import protocol as P
from serving.client import AlchemistClient, ServerError, ServerRejectedError, ServerUnavailableError
from serving.launcher import LocalTritonServer, ServerConfig, ServerStartError, free_port
from serving.media import decode_mp4, encode_mp4
from tests.model.conftest import randomize_

STEPS = 2
PROMPT = "a dog and a man walk on a beach"


def save_text_encoder(folder: Path) -> Path:
    """A small BERT saved as a pretrained folder (MiniLM's tokenizer)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_folder()))
    torch.manual_seed(1)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_model(text_encoder: Path) -> VideoAlchemist:
    torch.manual_seed(0)
    config = preset("tiny")
    return VideoAlchemist(
        dataclasses.replace(config, text=dataclasses.replace(config.text, path=str(text_encoder)))
    )


@pytest.fixture(scope="module")
def text_encoder_folder(tmp_path_factory):
    """At a location that is deleted once the model is exported: the server can only load the copy bundled
    into the repository."""
    return save_text_encoder(tmp_path_factory.mktemp("encoder") / "bert")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, text_encoder_folder):
    return tiny_model(text_encoder_folder).save_pretrained(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def generator(checkpoint):
    return Generator.from_pretrained(checkpoint)


@pytest.fixture(scope="module")
def server(checkpoint, generator, text_encoder_folder, tmp_path_factory):
    repository = tmp_path_factory.mktemp("repository")
    exported = export_model_repository(checkpoint, repository, max_batch_size=4, max_queue_delay_us=20000)
    assert list(exported.bundled_encoders) == [str(text_encoder_folder)]
    shutil.rmtree(text_encoder_folder)  # the server must load the bundled copy
    config = ServerConfig(repository, http_port=None, grpc_port=None, metrics_port=None)
    with LocalTritonServer(config) as running:
        yield running


@pytest.fixture(scope="module")
def refs(make_png):
    import io

    from PIL import Image

    dog = np.array(Image.open(io.BytesIO(make_png(40, 48, seed=1))))
    man = np.array(Image.open(io.BytesIO(make_png(36, 30, seed=2))))
    return {"dog": [dog], "man": [man, dog[::-1]]}


@pytest.fixture(scope="module")
def http(server):
    with AlchemistClient(server.http_url, "http", retries=0) as client:
        yield client


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_served_video_equals_in_process_generation(server, generator, refs, protocol):
    url = server.http_url if protocol == "http" else server.grpc_url
    with AlchemistClient(url, protocol) as client:
        served = client.generate_video(PROMPT, references=refs, steps=STEPS, guidance=3.0, seed=11)
    expected = generator.generate(PROMPT, refs, steps=STEPS, guidance=3.0, seed=11)
    assert served.video.dtype == np.uint8 and served.video.shape == (8, 32, 32, 3)
    np.testing.assert_array_equal(served.video, expected)
    assert decode_mp4(served.mp4).shape == expected.shape
    other_seed = generator.generate(PROMPT, refs, steps=STEPS, guidance=3.0, seed=12)
    assert not np.array_equal(other_seed, expected)  # the comparison can tell seeds apart


def test_a_step_cached_request_gets_the_in_process_cached_video(tmp_path):
    """STEP_CACHE reaches the sampler, from the SDK and from `alchemist generate --step-cache`: the served
    video equals the in-process one with the same cache and is not the exact (uncached) one, so the cache did
    skip steps. The blocks are made live first (a fresh model's blocks are the identity, so skipping them would
    change nothing); CPU instances, so both sides compute on the same device."""
    model = tiny_model(save_text_encoder(tmp_path / "bert")).eval()
    randomize_(model.dit)
    live = model.save_pretrained(tmp_path / "live")
    export_model_repository(live, tmp_path / "repository", max_batch_size=4, instance_kind="cpu")
    config = ServerConfig(tmp_path / "repository", http_port=None, grpc_port=None, metrics_port=None)
    out = tmp_path / "cli.mp4"
    with LocalTritonServer(config) as running, AlchemistClient(running.http_url, "http") as client:
        served = client.generate("a dog", steps=4, seed=3, step_cache=4.0)
        flags = ["--server", running.http_url, "--prompt", "a dog", "--sample-steps", "4", "--seed", "3"]
        result = CliRunner().invoke(app, ["generate", *flags, "--step-cache", "4.0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    generator, cache = Generator(model), StepCache(4.0)
    cached = generator.generate("a dog", steps=4, seed=3, step_cache=cache)
    exact = generator.generate("a dog", steps=4, seed=3)
    np.testing.assert_array_equal(served, cached)
    assert cache.skipped > 0 and not np.array_equal(cached, exact)
    fps = P.ServingLimits().fps  # the MP4 of a small video is encoded on one x264 thread: the same bytes
    assert out.read_bytes() == encode_mp4(cached, fps=fps) != encode_mp4(exact, fps=fps)


def test_mp4_is_encoded_only_when_requested(server, http):
    import tritonclient.http as httpclient

    assert http.generate_video("a dog", steps=1, with_mp4=False).mp4 == b""
    prompt = httpclient.InferInput(P.PROMPT, [1, 1], "BYTES")
    prompt.set_data_from_numpy(np.array([[b"a dog"]], dtype=np.object_))
    steps = httpclient.InferInput(P.STEPS, [1, 1], "INT32")
    steps.set_data_from_numpy(np.array([[1]], dtype=np.int32))
    with httpclient.InferenceServerClient(server.http_url) as raw:
        result = raw.infer("video_alchemist", [prompt, steps])  # no outputs named: Triton asks for all
    assert decode_mp4(bytes(result.as_numpy(P.MP4).reshape(-1)[0])).shape == result.as_numpy(P.VIDEO)[0].shape


def _bad_cases(make_png, make_bomb):
    ok = make_png()
    return [
        (dict(prompt=""), "PROMPT is empty"),
        (dict(prompt="a dog", references={"cat": [ok]}), "'cat' does not occur in the prompt"),
        (
            dict(prompt="a b c d e", references={w: [ok] for w in "abcde"}),
            "5 entity words given; the limit is 4",
        ),
        (dict(prompt="a dog", references={"dog": [ok] * 4}), "has 4 reference images; expected 1 to 3"),
        (
            dict(prompt="a dog", references={"dog": [b"GIF89a garbage"]}),
            "is a GIF image; GIF is not supported",
        ),
        (
            dict(prompt="a dog", references={"dog": [ok[:60]]}),
            "could not be decoded",
        ),
        (
            dict(prompt="a dog", references={"dog": [make_bomb(3000, 3000)]}),
            "3000x3000 = 9000000 pixels; the limit is",
        ),
        (dict(prompt="a dog", background=make_bomb(600000, 600000)), "declares more than"),
        (dict(prompt="a dog", frames=64), "FRAMES=64 is out of range"),
        (dict(prompt="a dog", height=20), "height=20 must be a positive multiple of 8"),
        (dict(prompt="a dog", steps=101), "STEPS=101 is out of range"),
        (dict(prompt="a dog", step_cache=6.0), "STEP_CACHE=6.0 is out of range"),
    ]


def test_bad_requests_are_refused_and_the_server_stays_up(http, make_png, make_bomb):
    for options, expected in _bad_cases(make_png, make_bomb):
        with pytest.raises(ServerRejectedError) as info:
            http.generate(steps=options.pop("steps", STEPS), **options)
        assert expected in info.value.message, (options, info.value.message)
        assert info.value.status == "400"
        assert http.generate("a dog", steps=1).shape == (8, 32, 32, 3)


def test_wrong_dtypes_and_shapes_are_refused(server, http):
    import tritonclient.http as httpclient

    def raw(name: str, array: np.ndarray, dtype: str):
        tensors = {P.PROMPT: (np.array([[b"a dog"]], dtype=np.object_), "BYTES"), name: (array, dtype)}
        inputs = []
        for tensor_name, (value, value_dtype) in tensors.items():
            inputs.append(httpclient.InferInput(tensor_name, list(value.shape), value_dtype))
            inputs[-1].set_data_from_numpy(value)
        return http.infer(inputs)

    cases = [  # the first three are Triton's own checks against config.pbtxt, the last one the backend's
        (P.FRAMES, np.array([[8.0]], dtype=np.float32), "FP32", "expects 'INT32'"),
        (P.SEED, np.array([[1, 2]], dtype=np.int64), "INT64", "unexpected shape for input 'SEED'"),
        (P.GUIDANCE, np.array([[[1.0]]], dtype=np.float32), "FP32", "unexpected shape for input 'GUIDANCE'"),
        (P.PROMPT, np.array([[b"a dog"], [b"a cat"]], dtype=np.object_), "BYTES", "batch size 2"),
    ]
    for name, array, dtype, expected in cases:
        with pytest.raises(ServerRejectedError, match=expected):
            raw(name, array, dtype)
    assert http.generate("a dog", steps=1).shape == (8, 32, 32, 3)


def test_concurrent_requests_batch_and_keep_their_own_seeds(server, generator):
    seeds = list(range(4))

    start = threading.Barrier(len(seeds))

    def call(seed: int) -> np.ndarray:
        with AlchemistClient(server.grpc_url, "grpc") as client:
            start.wait()  # send together, so they meet in the server's queue
            return client.generate("a dog", steps=STEPS, seed=seed)

    with ThreadPoolExecutor(len(seeds)) as pool:
        videos = list(pool.map(call, seeds))
    for seed, video in zip(seeds, videos):
        np.testing.assert_array_equal(video, generator.generate("a dog", steps=STEPS, seed=seed))
    import tritonclient.http as httpclient

    with httpclient.InferenceServerClient(server.http_url) as stats_client:
        stats = stats_client.get_inference_statistics("video_alchemist")["model_stats"][0]
    assert stats["execution_count"] < stats["inference_count"], "no request was batched with another"


def test_unreachable_server_is_retried_then_reported():
    with AlchemistClient(f"127.0.0.1:{free_port()}", "http", retries=2, backoff_s=0.01) as client:
        with pytest.raises(ServerUnavailableError, match="after 3 attempts"):
            client.generate("a dog")


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_silent_server_times_out_without_retrying(protocol):
    """A socket that accepts connections and never answers stands in for a generation that takes too long."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"127.0.0.1:{silent.getsockname()[1]}"
        with AlchemistClient(url, protocol, timeout_s=0.3, retries=3, backoff_s=5.0) as client:
            start = time.monotonic()
            with pytest.raises(ServerError, match="no answer within 0.3 s"):
                client.generate("a dog")
            assert time.monotonic() - start < 5.0  # a retry would first sleep backoff_s


def test_generate_cli_writes_mp4_and_reports_rejections(server, tmp_path, make_png):
    image = tmp_path / "dog.png"
    image.write_bytes(make_png())
    out = tmp_path / "out" / "video.mp4"
    runner = CliRunner()
    base = [
        "generate",
        "--server",
        server.grpc_url,
        "--protocol",
        "grpc",
        "--sample-steps",
        "1",
        "--out",
        str(out),
    ]
    result = runner.invoke(app, [*base, "--prompt", "a dog", "--ref", f"dog={image}"])
    assert result.exit_code == 0, result.output
    assert decode_mp4(out.read_bytes()).shape == (8, 32, 32, 3)
    result = runner.invoke(app, [*base, "--prompt", "a cat", "--ref", f"dog={image}"])
    assert result.exit_code == 1 and "'dog' does not occur in the prompt" in result.output


def test_broken_repository_fails_start_with_the_reason(checkpoint, tmp_path):
    exported = export_model_repository(checkpoint, tmp_path / "repository", bundle=False)
    exported.config_path.write_text(
        exported.config_path.read_text().replace("max_batch_size", "max_batch_sise")
    )
    config = ServerConfig(tmp_path / "repository", http_port=None, grpc_port=None, metrics_port=None)
    with pytest.raises(
        ServerStartError, match="failed to read text proto from .*video_alchemist/config.pbtxt"
    ):
        LocalTritonServer(config).start()
