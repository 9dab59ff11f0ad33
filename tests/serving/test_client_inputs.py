"""The client refuses what it cannot send faithfully, before sending anything, naming the value or the file."""

import io
from concurrent import futures

import grpc
import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from pipelines.commands import serve
from serving import protocol as P
from serving.client import AlchemistClient, ClientError, InvalidInputError
from serving.launcher import free_port

app = typer.Typer()
serve.register(app)  # the real `alchemist generate`, without importing every other command


@pytest.fixture
def client():
    with AlchemistClient(f"127.0.0.1:{free_port()}", "http", retries=0) as client:  # nothing listens
        yield client


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"steps": 4294967297}, "steps=4294967297 does not fit INT32"),  # numpy wraps it to 1
        ({"frames": 4294967304}, "frames=4294967304 does not fit INT32"),  # wraps to 8
        ({"frames": 3000000000}, "frames=3000000000 does not fit INT32"),  # wraps to -1294967296
        ({"seed": 99999999999999999999}, "seed=99999999999999999999 does not fit INT64"),  # OverflowError
        ({"guidance": 1e39}, "guidance=1e\\+39 does not fit FP32"),  # becomes inf
        ({"width": 8.5}, "width=8.5 must be a whole number"),  # would send 8
        ({"height": True}, "height=True must be a whole number"),
    ],
)
def test_values_that_do_not_fit_their_wire_type_are_refused(client, options, expected):
    with pytest.raises(InvalidInputError, match=expected):
        client.build_inputs("a dog", **options)


def test_values_at_the_wire_type_edges_are_sent_exactly(client):
    edges = {"frames": 2**31 - 1, "steps": -(2**31), "seed": 2**63 - 1, "guidance": 3.0e38}
    tensors = {t.name(): t for t in client.build_inputs("a dog", **edges)}
    assert tensors[P.SEED].datatype() == "INT64" and tensors[P.FRAMES].datatype() == "INT32"
    assert np.frombuffer(tensors[P.SEED]._raw_data, np.int64)[0] == 2**63 - 1
    assert np.frombuffer(tensors[P.STEPS]._raw_data, np.int32)[0] == -(2**31)


def test_step_cache_is_sent_only_when_on(client):
    """Off (None or 0) is the server's default and is left out, so repositories exported before STEP_CACHE
    still accept the call; a threshold is sent as FP32."""
    for off in (None, 0, 0.0):
        assert P.STEP_CACHE not in {t.name() for t in client.build_inputs("a dog", step_cache=off)}
    (tensor,) = [t for t in client.build_inputs("a dog", step_cache=0.25) if t.name() == P.STEP_CACHE]
    assert tensor.datatype() == "FP32" and np.frombuffer(tensor._raw_data, np.float32)[0] == 0.25


def _gif(frames: int) -> bytes:
    images = [Image.new("RGB", (4, 4), (60 * i, 0, 0)) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:])
    return buffer.getvalue()


def test_image_errors_name_the_file(client, tmp_path):
    gif, broken = tmp_path / "cat.gif", tmp_path / "dog.png"
    gif.write_bytes(_gif(3))
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30)
    with pytest.raises(
        InvalidInputError, match=f"reference 0 of 'cat' \\({gif}\\) is a GIF image; GIF is not"
    ):
        client.build_inputs("a cat", references={"cat": [gif]})
    with pytest.raises(InvalidInputError, match=f"reference 1 of 'dog' \\({broken}\\)") as caught:
        client.build_inputs("a dog", references={"dog": [_png(tmp_path / "ok.png"), broken]})
    assert "BytesIO" not in str(caught.value)


def test_sixteen_bit_pil_image_is_sent_as_its_true_tones(client):
    tones = np.arange(0, 256, 16, dtype=np.uint16).reshape(4, 4)
    tensors = {
        t.name(): t for t in client.build_inputs("a dog", references={"dog": [Image.fromarray(tones * 257)]})
    }
    raw = tensors[P.REFERENCE_IMAGES]._raw_data
    png = raw[4 : 4 + int(np.frombuffer(raw[:4], "<u4")[0])]  # BYTES on the wire: 4-byte length, then data
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png)))[..., 0], tones)


def _png(path):
    Image.new("RGB", (8, 8), 7).save(path)
    return path


def test_http_to_a_grpc_port_says_so():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with AlchemistClient(f"127.0.0.1:{port}", "http", retries=2, backoff_s=0.01) as client:
            with pytest.raises(ClientError, match=f"127.0.0.1:{port} does not speak HTTP on that port"):
                client.generate("a dog")
    finally:
        server.stop(0)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--seed", "99999999999999999999"], "error: seed=99999999999999999999 does not fit INT64"),
        (["--sample-steps", "4294967297"], "error: steps=4294967297 does not fit INT32"),
        (["--ref", "dog={gif}"], "error: reference 0 of 'dog' ({gif}) is a GIF image"),
    ],
)
def test_generate_cli_answers_bad_values_in_one_line(tmp_path, flags, expected):
    gif = tmp_path / "dog.gif"
    gif.write_bytes(_gif(2))
    flags = [f.format(gif=gif) for f in flags]
    server = f"127.0.0.1:{free_port()}"
    result = CliRunner().invoke(
        app, ["generate", "--server", server, "--prompt", "a dog", "--retries", "0", *flags]
    )
    assert result.exit_code == 1
    assert result.output.strip() == result.output.strip().splitlines()[0]  # one line, no traceback
    assert result.output.startswith(expected.format(gif=gif))
