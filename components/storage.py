"""Object storage: turn a local path or an `s3://` URI into a local path, and upload results.

Every step takes its inputs as a URI so the same code runs on a laptop (local folders) and on the
cluster (S3). Downloads land in a cache directory keyed by the content listing (each object's ETag
and size), so an unchanged prefix is never fetched twice and a changed one never overwrites files a
running process may still read. boto3 reads credentials and `AWS_ENDPOINT_URL` from the usual AWS_*
environment variables, which is how tests point it at a local S3-compatible server.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

DEFAULT_CACHE_DIR = Path("work/cache/s3")


class StorageError(RuntimeError):
    """A URI cannot be read or written (missing bucket, key or credentials)."""


class MissingPathError(StorageError, FileNotFoundError):
    """A local input that does not exist: callers catching either storage or file errors report it."""


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        if not uri.startswith("s3://"):
            raise StorageError(f"uri={uri!r} is not an s3:// URI")
        bucket, _, key = uri[len("s3://") :].partition("/")
        if not bucket:
            raise StorageError(f"uri={uri!r} has no bucket name; expected s3://bucket/key")
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def is_s3(uri: str | os.PathLike) -> bool:
    return str(uri).startswith("s3://")


def s3_client() -> Any:
    """A boto3 S3 client configured from the environment only.

    botocore itself reads AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_PROFILE and
    friends, so nothing here overrides what an operator sets.
    """
    import boto3

    return boto3.session.Session().client("s3")


def materialize(
    uri: str | os.PathLike, cache_dir: Path | None = None, what: str = "local path", folder: bool = False
) -> Path:
    """Return a local path holding `uri`: a local file or folder as is, an S3 object or prefix downloaded.

    An `s3://bucket/key` naming an object gives the downloaded file; otherwise the key is read as a
    prefix and the returned folder mirrors everything under it. `what` names the input in the error for
    a local path that does not exist (or, with `folder`, is not a folder).
    """
    if not is_s3(uri):
        path = Path(uri)
        if not (path.is_dir() if folder else path.exists()):
            kind = "folder" if folder else "path"
            raise MissingPathError(
                f"{what} {str(path)!r} does not exist (expected a local {kind} or s3:// URI)"
            )
        return path
    s3 = S3Uri.parse(str(uri))
    client = s3_client()
    objects = _list_objects(client, s3)
    single = len(objects) == 1 and objects[0]["Key"] == s3.key
    prefix = s3.key.rstrip("/") + "/" if s3.key else ""
    files = {(Path(o["Key"]).name if single else o["Key"][len(prefix) :]): o for o in objects}
    bucket_cache = Path(cache_dir or os.environ.get("ALCHEMIST_CACHE_DIR") or DEFAULT_CACHE_DIR) / s3.bucket
    target = bucket_cache / _listing_key(objects)
    # The record sits beside the folder, so the folder holds exactly the objects and nothing else.
    marker = target.with_name(target.name + ".json")
    result = target / Path(s3.key).name if single else target
    if marker.exists():
        return result
    previous = _cached_objects(bucket_cache)
    for relative, obj in tqdm(files.items(), desc=f"download {s3}", unit="file", disable=len(files) < 2):
        local = target / relative
        local.parent.mkdir(parents=True, exist_ok=True)
        # Downloads are written under a temporary name and renamed, so a present file is whole.
        if local.exists() and local.stat().st_size == obj["Size"]:
            continue
        cached = previous.get((obj["Key"], obj["ETag"], obj["Size"]))
        if cached is not None and cached.exists():
            _link_or_copy(cached, local)
            continue
        partial = local.with_name(local.name + ".partial")
        _call(lambda o=obj, p=partial: client.download_file(s3.bucket, o["Key"], str(p)), s3)
        partial.replace(local)
    record = [{"key": o["Key"], "etag": o["ETag"], "size": o["Size"], "path": r} for r, o in files.items()]
    marker.write_text(json.dumps({"uri": str(s3), "objects": record}))
    return result


def upload(path: Path | str, uri: str) -> list[str]:
    """Upload a file or a folder (recursively) to `uri` and return the URIs written.

    A file goes to exactly `uri` unless it ends with "/", then to `uri` + file name; a folder's files
    go under the prefix `uri` keeping their relative paths.
    """
    path = Path(path)
    if not path.exists():
        raise StorageError(f"cannot upload {str(path)!r}: it does not exist")
    s3 = S3Uri.parse(uri)
    client = s3_client()
    if path.is_file():
        key = s3.key + path.name if (not s3.key or s3.key.endswith("/")) else s3.key
        pairs = [(path, key)]
    else:
        prefix = s3.key.rstrip("/") + "/" if s3.key else ""
        pairs = [(f, prefix + f.relative_to(path).as_posix()) for f in sorted(path.rglob("*")) if f.is_file()]
    for local, key in tqdm(pairs, desc=f"upload {s3}", unit="file", disable=len(pairs) < 2):
        _call(lambda p=local, k=key: client.upload_file(str(p), s3.bucket, k), S3Uri(s3.bucket, key))
    return [f"s3://{s3.bucket}/{key}" for _, key in pairs]


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks so multi-gigabyte weights never sit in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _list_objects(client: Any, s3: S3Uri) -> list[dict[str, Any]]:
    """The object named by the key if it exists, else every object under the key as a prefix."""
    from botocore.exceptions import ClientError

    if s3.key and not s3.key.endswith("/"):
        try:
            head = _call(lambda: client.head_object(Bucket=s3.bucket, Key=s3.key), s3)
            return [{"Key": s3.key, "Size": head["ContentLength"], "ETag": head["ETag"]}]
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
    prefix = s3.key.rstrip("/") + "/" if s3.key else ""
    paginator = client.get_paginator("list_objects_v2")
    objects = []
    for page in _call(lambda: list(paginator.paginate(Bucket=s3.bucket, Prefix=prefix)), s3):
        objects += [o for o in page.get("Contents", []) if not o["Key"].endswith("/")]
    if not objects:
        raise StorageError(f"{s3} names no object and no non-empty prefix in bucket {s3.bucket!r}")
    return objects


def _cached_objects(bucket_cache: Path) -> dict[tuple[str, str, int], Path]:
    """Files of earlier complete downloads from this bucket by (key, ETag, size), to reuse unchanged ones."""
    found: dict[tuple[str, str, int], Path] = {}
    for marker in bucket_cache.glob("*.json"):
        for obj in json.loads(marker.read_text())["objects"]:
            found[(obj["key"], obj["etag"], obj["size"])] = marker.with_suffix("") / obj["path"]
    return found


def _link_or_copy(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def _listing_key(objects: list[dict[str, Any]]) -> str:
    digest = hashlib.sha256()
    for obj in sorted(objects, key=lambda o: o["Key"]):
        digest.update(f"\n{obj['Key']}\t{obj['ETag']}\t{obj['Size']}".encode())
    return digest.hexdigest()[:24]


def _call(fn: Any, s3: S3Uri) -> Any:
    """Run one boto3 call, turning the usual failures into a StorageError that names the URI."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        return fn()
    except NoCredentialsError as err:
        raise StorageError(
            f"no AWS credentials for {s3}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(and AWS_ENDPOINT_URL for a non-AWS endpoint) or configure a profile"
        ) from err
    except ClientError as err:
        code = str(err.response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchBucket",) or (code == "404" and not s3.key):
            raise StorageError(f"bucket {s3.bucket!r} does not exist (uri {s3})") from err
        if code in ("404", "NoSuchKey", "NotFound"):
            raise
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise StorageError(f"access denied to {s3} ({code}): check the AWS credentials") from err
        raise StorageError(f"S3 request for {s3} failed: {err}") from err
    except BotoCoreError as err:
        raise StorageError(f"S3 request for {s3} failed: {err}") from err
