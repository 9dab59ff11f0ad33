"""DVC versioning with real DVC: a local remote, an S3 remote on a local S3-compatible server, checkout by rev."""

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from components.version import VersionError, checkout_dataset, default_remote, version_dataset


def _write_dataset(root: Path, caption: str = "a dog runs") -> Path:
    (root / "media").mkdir(parents=True, exist_ok=True)
    (root / "manifest.parquet").write_bytes(caption.encode())
    (root / "media" / "clip.mp4").write_bytes(b"\x00" * 64)
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_local_remote_versions_and_checks_out(tmp_path):
    repo = tmp_path / "data"
    dataset = _write_dataset(repo / "embedded")

    first = version_dataset(str(dataset), str(repo))
    assert first.rev == yaml.safe_load(first.dvc_file.read_text())["outs"][0]["md5"]
    assert first.rev.endswith(".dir") and len(first.rev) == 36
    assert (first.num_files, first.size, first.pushed) == (2, len("a dog runs") + 64, 3)  # 2 files + .dir
    assert first.remote == default_remote(repo) == str(tmp_path / "dvc-remote")
    assert (tmp_path / "dvc-remote" / "files" / "md5" / first.rev[:2] / first.rev[2:]).is_file()

    written = first.dvc_file.stat().st_mtime_ns
    again = version_dataset(str(dataset), str(repo))
    assert (again.rev, again.pushed, again.num_files) == (first.rev, 0, 2)
    assert first.dvc_file.stat().st_mtime_ns == written  # unchanged data: the .dvc file is not rewritten

    (dataset / "manifest.parquet").write_bytes(b"a cat sleeps")
    changed = version_dataset(str(dataset), str(repo))
    assert changed.rev != first.rev
    assert changed.pushed == 2  # the new manifest and the new .dir listing; the video is already there

    # Another machine: only the remote and the rev, no versioning repository.
    old = checkout_dataset(first.rev, tmp_path / "elsewhere" / "old", first.remote)
    assert _files(old) == {"manifest.parquet": b"a dog runs", "media/clip.mp4": b"\x00" * 64}
    # Versioning a checked-out copy gives back the same rev and the full record, pushing nothing.
    recorded = version_dataset(old, tmp_path / "elsewhere", first.remote)
    assert (recorded.rev, recorded.num_files, recorded.pushed) == (first.rev, 2, 0)
    # Back in the versioning repository, checking out a rev replaces the working copy.
    checkout_dataset(first.rev, dataset, first.remote, repo_dir=repo)
    assert (dataset / "manifest.parquet").read_bytes() == b"a dog runs"


def test_bad_inputs_have_clear_errors(tmp_path):
    with pytest.raises(VersionError, match="is not a folder"):
        version_dataset(str(tmp_path / "missing"), str(tmp_path))
    outside = _write_dataset(tmp_path / "outside")
    with pytest.raises(VersionError, match="must be inside the DVC repository"):
        version_dataset(str(outside), str(tmp_path / "repo"))
    with pytest.raises(VersionError, match="is not a DVC directory hash"):
        checkout_dataset("HEAD", tmp_path / "x", str(tmp_path / "remote"))
    with pytest.raises(VersionError, match="cannot check out rev"):
        checkout_dataset("0" * 32 + ".dir", tmp_path / "x", str(tmp_path / "empty-remote"))


def test_s3_remote(s3_env, s3_endpoint, tmp_path):
    client, bucket = s3_env
    endpoint = s3_endpoint
    repo = tmp_path / "data"
    dataset = _write_dataset(repo / "embedded")

    version = version_dataset(str(dataset), str(repo), remote=f"s3://{bucket}/dvc", endpoint_url=endpoint)
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="dvc/")["Contents"]}
    assert f"dvc/files/md5/{version.rev[:2]}/{version.rev[2:]}" in keys
    assert len(keys) == 3 and version.pushed == 3
    # Without --remote the repository keeps its S3 remote and endpoint.
    assert version_dataset(str(dataset), str(repo)) == replace(version, pushed=0)

    copy = checkout_dataset(
        version.rev, tmp_path / "worker" / "embedded", version.remote, endpoint_url=endpoint
    )
    assert _files(copy) == _files(dataset)


def test_cli_prints_the_rev(tmp_path):
    from typer.testing import CliRunner

    from pipelines.cli import app

    dataset = _write_dataset(tmp_path / "data" / "embedded")
    remote = tmp_path / "remote"
    result = CliRunner().invoke(app, ["data", "version", "--dataset", str(dataset), "--remote", str(remote)])
    assert result.exit_code == 0, result.output
    rev = yaml.safe_load((tmp_path / "data" / "embedded.dvc").read_text())["outs"][0]["md5"]
    assert f"rev {rev}" in result.output and (remote / "files" / "md5" / rev[:2] / rev[2:]).is_file()

    missing = CliRunner().invoke(app, ["data", "version", "--dataset", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "is not a folder" in missing.output
