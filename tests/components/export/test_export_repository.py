"""Export writes a versioned, self-contained Triton repository whose config Triton's own schema accepts."""

import json
import shutil
import subprocess
import sys

import pytest
import torch
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from components.export import ExportError, export_model_repository
from components.storage import StorageError
from model.alchemist import VideoAlchemist
from model.config import preset
from serving import protocol as P


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    return VideoAlchemist(preset("tiny")).save_pretrained(tmp_path_factory.mktemp("ckpt"))


def test_layout_config_and_card(checkpoint, tmp_path):
    result = export_model_repository(
        checkpoint, tmp_path, max_batch_size=2, instance_kind="gpu", instance_count=2
    )
    assert result.version == 1 and result.version_dir == tmp_path / "video_alchemist" / "1"
    for name in ("model.py", "checkpoint/model.safetensors", "checkpoint/config.json", "export.json"):
        assert (result.version_dir / name).is_file(), name
    assert (result.version_dir / "src" / "model" / "generator.py").is_file()
    assert not (result.version_dir / "model").exists()  # would shadow model.py in the stub's import

    config = text_format.Parse(result.config_path.read_text(), model_config_pb2.ModelConfig())
    assert config.backend == "python" and config.max_batch_size == 2
    assert [i.name for i in config.input] == list(P.INPUTS)
    assert [o.name for o in config.output] == [P.VIDEO, P.MP4]
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert config.instance_group[0].count == 2
    assert config.HasField("dynamic_batching")
    optional = {i.name for i in config.input if i.optional}
    assert optional == {name for name, spec in P.INPUTS.items() if spec[3]}
    limits = P.ServingLimits.from_parameters({k: v.string_value for k, v in config.parameters.items()})
    tiny = preset("tiny").video
    assert (limits.max_entities, limits.default_frames, limits.max_height) == (
        tiny.max_entities,
        tiny.frames,
        64,
    )

    card = result.card_path.read_text()
    assert "random weights: text, image" in card and result.weights_sha256 in card
    provenance = json.loads((result.version_dir / "export.json").read_text())
    assert provenance["random_weight_encoders"] == ["text", "image"] and provenance["preset"] == "tiny"


def test_versions_increment_and_never_overwrite_silently(checkpoint, tmp_path):
    assert export_model_repository(checkpoint, tmp_path).version == 1
    assert export_model_repository(checkpoint, tmp_path).version == 2
    assert export_model_repository(checkpoint, tmp_path, version=7).version == 7
    with pytest.raises(ExportError, match="exists"):
        export_model_repository(checkpoint, tmp_path, version=2)
    assert export_model_repository(checkpoint, tmp_path, version=2, overwrite=True).version == 2
    with pytest.raises(ExportError, match="version=0 must be >= 1"):
        export_model_repository(checkpoint, tmp_path, version=0)


def test_bad_inputs_are_refused(checkpoint, tmp_path):
    with pytest.raises(ExportError, match="missing model.safetensors"):
        (tmp_path / "half").mkdir()
        (tmp_path / "half" / "config.json").write_text("{}")
        export_model_repository(tmp_path / "half", tmp_path / "repo")
    with pytest.raises(ExportError, match="instance_kind='tpu'"):
        export_model_repository(checkpoint, tmp_path / "repo", instance_kind="tpu")
    with pytest.raises(ExportError, match="model_name='a/b'"):
        export_model_repository(checkpoint, tmp_path / "repo", model_name="a/b")


def test_version_runs_from_its_own_code_snapshot(checkpoint, tmp_path):
    """With src/ first on sys.path (as model.py puts it), the copies win over the installed packages.
    (The served test loads the copied checkpoint through them end to end.)"""
    result = export_model_repository(checkpoint, tmp_path)
    script = (
        "import os, sys; sys.path.insert(0, os.path.abspath('src')); import model, serving.media;"
        "print(model.__file__, serving.media.__file__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=result.version_dir, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    src = result.version_dir.resolve() / "src"
    assert out.stdout.split() == [str(src / "model" / "__init__.py"), str(src / "serving" / "media.py")]


def test_encoder_folders_are_bundled_and_builtin_ones_stay_external(checkpoint, tmp_path):
    encoder = tmp_path / "t5"
    encoder.mkdir()
    (encoder / "config.json").write_text("{}")
    edited = tmp_path / "ckpt"
    shutil.copytree(checkpoint, edited)
    meta = json.loads((edited / "config.json").read_text())
    meta["config"]["text"].update(path=str(encoder), tokenizer_path="builtin:minilm")
    meta["config"]["vae"]["path"] = str(encoder)  # the same folder twice is copied once
    (edited / "config.json").write_text(json.dumps(meta))

    result = export_model_repository(edited, tmp_path / "repo")
    assert result.bundled_encoders == {str(encoder): "encoders/text_path"}
    assert result.external_encoders == {"text.tokenizer_path": "builtin:minilm"}
    assert (result.version_dir / "encoders" / "text_path" / "config.json").read_text() == "{}"
    assert json.loads((result.version_dir / "encoders.json").read_text()) == result.bundled_encoders
    assert "bundled in `encoders/text_path`" in result.card_path.read_text()

    unbundled = export_model_repository(edited, tmp_path / "repo", bundle=False)
    assert unbundled.bundled_encoders == {} and not (unbundled.version_dir / "encoders").exists()
    assert unbundled.external_encoders["vae.path"] == str(encoder)
    with pytest.raises(StorageError, match="does not exist"):
        meta["config"]["image"]["path"] = str(tmp_path / "missing")
        (edited / "config.json").write_text(json.dumps(meta))
        export_model_repository(edited, tmp_path / "repo")
