"""Object storage against a real S3-compatible HTTP endpoint (moto's server) started by the test."""

import hashlib

import pytest

from components.storage import StorageError, file_sha256, materialize, upload


def test_local_path_passes_through(tmp_path):
    assert materialize(str(tmp_path)) == tmp_path
    with pytest.raises(StorageError, match="does not exist"):
        materialize(str(tmp_path / "missing"))


def test_file_digest_is_the_sha256_of_every_byte_across_chunks(tmp_path):
    path = tmp_path / "weights.bin"
    data = bytes(range(256)) * 5000  # 1.2 MiB: more than one read chunk
    path.write_bytes(data)
    assert file_sha256(path) == file_sha256(str(path)) == hashlib.sha256(data).hexdigest()
    path.write_bytes(data[:-1] + b"\x00")
    assert file_sha256(path) != hashlib.sha256(data).hexdigest()


def test_prefix_round_trip_and_cache(s3_env, tmp_path):
    client, bucket = s3_env
    src = tmp_path / "src"
    (src / "media").mkdir(parents=True)
    (src / "manifest.parquet").write_bytes(b"rows")
    (src / "media" / "a.png").write_bytes(b"png-a")
    written = upload(src, f"s3://{bucket}/datasets/v1")
    assert sorted(written) == [
        f"s3://{bucket}/datasets/v1/manifest.parquet",
        f"s3://{bucket}/datasets/v1/media/a.png",
    ]

    cache = tmp_path / "cache"
    local = materialize(f"s3://{bucket}/datasets/v1", cache_dir=cache)
    assert sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()) == [
        "manifest.parquet",
        "media/a.png",
    ]
    assert (local / "media" / "a.png").read_bytes() == b"png-a"

    # Same listing: same folder, nothing fetched again (a local edit would otherwise be overwritten).
    (local / "media" / "a.png").write_bytes(b"local")
    assert materialize(f"s3://{bucket}/datasets/v1/", cache_dir=cache) == local
    assert (local / "media" / "a.png").read_bytes() == b"local"

    # A changed object gives a new folder; the unchanged object is reused from the earlier download.
    client.put_object(Bucket=bucket, Key="datasets/v1/manifest.parquet", Body=b"rows-v2")
    changed = materialize(f"s3://{bucket}/datasets/v1", cache_dir=cache)
    assert changed != local
    assert (changed / "manifest.parquet").read_bytes() == b"rows-v2"
    assert (changed / "media" / "a.png").read_bytes() == b"local"  # linked from the cache, not fetched


def test_single_object(s3_env, tmp_path):
    client, bucket = s3_env
    src = tmp_path / "weights.bin"
    src.write_bytes(b"\x00\x01")
    assert upload(src, f"s3://{bucket}/models/") == [f"s3://{bucket}/models/weights.bin"]
    local = materialize(f"s3://{bucket}/models/weights.bin", cache_dir=tmp_path / "cache")
    assert local.name == "weights.bin" and local.read_bytes() == b"\x00\x01"


def test_clear_errors(s3_env, tmp_path, monkeypatch):
    _, bucket = s3_env
    with pytest.raises(StorageError, match="bucket 'no-such-bucket' does not exist"):
        materialize("s3://no-such-bucket/x", cache_dir=tmp_path)
    with pytest.raises(StorageError, match="names no object and no non-empty prefix"):
        materialize(f"s3://{bucket}/missing/key", cache_dir=tmp_path)
    with pytest.raises(StorageError, match="not an s3:// URI"):
        upload(tmp_path, "/local/path")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(StorageError, match="no AWS credentials"):
        materialize(f"s3://{bucket}/x", cache_dir=tmp_path)
