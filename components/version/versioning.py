"""Version a mined dataset folder with DVC and get any version back by its revision.

The revision is the md5 of the dataset's `.dir` object that `dvc add` writes into the `.dvc` file.
It names the exact content, so every later step and the MLflow run record that one string, and any
machine that can reach the remote can rebuild the folder from it (`checkout_dataset`), with or
without the repository that versioned it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from dvc.repo import Repo

REMOTE_NAME = "storage"
_REV_PATTERN = re.compile(r"^[0-9a-f]{32}\.dir$")


class VersionError(RuntimeError):
    """The dataset cannot be versioned or a revision cannot be checked out."""


@dataclass(frozen=True)
class DataVersion:
    """What `dvc add` + `dvc push` recorded for one dataset folder."""

    rev: str  # md5 of the directory object, e.g. "3f2a...e1.dir"
    dvc_file: Path
    remote: str
    num_files: int
    size: int  # bytes
    pushed: int  # files this call uploaded to the remote (0 when the remote already had them)


def default_remote(repo_dir: str | os.PathLike) -> str:
    """A local remote folder beside the DVC repository, so the embedded setup needs no storage service."""
    return str(Path(repo_dir).resolve().parent / "dvc-remote")


def version_dataset(
    dataset_dir: str | os.PathLike,
    repo_dir: str | os.PathLike,
    remote: str | None = None,
    endpoint_url: str | None = None,
) -> DataVersion:
    """`dvc add` the folder `dataset_dir` inside the DVC repository `repo_dir` and push it to `remote`.

    The repository is created when missing (without Git unless `repo_dir` is a Git root: the `.dvc`
    file and the remote are the record). `remote` is a local folder or an `s3://bucket/prefix`
    (dvc-s3; `endpoint_url` or AWS_ENDPOINT_URL for a non-AWS endpoint); when None, the repository's
    configured remote is kept, or `default_remote` is set up for a new repository.
    Unchanged data gives the same revision and pushes nothing.
    """
    dataset = Path(dataset_dir).resolve()
    if not dataset.is_dir():
        raise VersionError(f"dataset_dir={str(dataset)!r} is not a folder")
    with _open_repo(repo_dir, dataset) as repo:
        configured = repo.config["remote"].get(REMOTE_NAME, {}).get("url")
        if remote is None and configured:
            url = configured  # keep the repository's remote (and its settings) unless told otherwise
        else:
            url = _configure_remote(repo, remote or default_remote(repo.root_dir), endpoint_url)
        dvc_file = dataset.with_name(dataset.name + ".dvc")
        try:
            # `dvc status` is empty when the data matches its .dvc file: then only the push (a no-op when
            # the remote already has everything) remains, and the .dvc file is left untouched.
            if not (_has_counts(dvc_file) and not repo.status(targets=[str(dvc_file)])):
                repo.add(str(dataset))
            pushed = repo.push(targets=[str(dvc_file)], remote=REMOTE_NAME)
        except Exception as err:  # DvcException and storage errors carry the useful message
            raise VersionError(
                f"versioning {dataset} into {repo.root_dir} (remote {url}) failed: {err}"
            ) from err
    out = yaml.safe_load(dvc_file.read_text())["outs"][0]
    return DataVersion(
        rev=out["md5"],
        dvc_file=dvc_file,
        remote=url,
        num_files=int(out.get("nfiles", 0)),
        size=int(out.get("size", 0)),
        pushed=int(pushed),
    )


def checkout_dataset(
    rev: str,
    dest_dir: str | os.PathLike,
    remote: str,
    repo_dir: str | os.PathLike | None = None,
    endpoint_url: str | None = None,
) -> Path:
    """Rebuild the dataset with revision `rev` into `dest_dir`, pulling what is missing from `remote`.

    Writes `<dest_dir>.dvc` pointing at `rev` inside the DVC repository `repo_dir` (default: the
    parent of `dest_dir`, created when missing) and runs `dvc pull` on it, so this works on a machine
    that never saw the versioning repository. Files in `dest_dir` that differ from `rev` are replaced.
    """
    if not _REV_PATTERN.match(rev):
        raise VersionError(f"rev={rev!r} is not a DVC directory hash (expected 32 hex digits + '.dir')")
    dest = Path(dest_dir).resolve()
    with _open_repo(repo_dir or dest.parent, dest) as repo:
        url = _configure_remote(repo, remote, endpoint_url)
        dvc_file = dest.with_name(dest.name + ".dvc")
        out = {"md5": rev, "hash": "md5", "path": dest.name}
        dvc_file.write_text(yaml.safe_dump({"outs": [out]}, sort_keys=False))
        try:
            repo.pull(targets=[str(dvc_file)], remote=REMOTE_NAME, force=True)
        except Exception as err:
            raise VersionError(f"cannot check out rev {rev} from remote {url} into {dest}: {err}") from err
    return dest


def _has_counts(dvc_file: Path) -> bool:
    """A .dvc file `dvc add` wrote (with file count and size), not a bare pointer from `checkout_dataset`."""
    if not dvc_file.is_file():
        return False
    out = yaml.safe_load(dvc_file.read_text())["outs"][0]
    return "nfiles" in out and "size" in out


@contextmanager
def _open_repo(repo_dir: str | os.PathLike, data_path: Path) -> Iterator[Repo]:
    """Open (or create) the DVC repository at `repo_dir`, checking that `data_path` lies inside it."""
    from dvc.repo import Repo

    root = Path(repo_dir).resolve()
    if root == data_path or root not in data_path.parents:
        raise VersionError(
            f"{str(data_path)!r} must be inside the DVC repository repo_dir={str(root)!r} "
            "(DVC only tracks data inside its repository)"
        )
    if not (root / Repo.DVC_DIR).is_dir():
        root.mkdir(parents=True, exist_ok=True)
        Repo.init(str(root), no_scm=not (root / ".git").exists()).close()
        repo = Repo(str(root))
        # DVC keeps its state and index databases in a machine-wide folder by default; keeping them
        # in the repository leaves no state behind when a repository (or a test's tmp dir) goes away.
        with repo.config.edit("local") as local:
            local["core"]["site_cache_dir"] = str(root / Repo.DVC_DIR / "tmp" / "site-cache")
        repo.close()
    with Repo(str(root)) as repo:
        yield repo


def _configure_remote(repo: Repo, url: str, endpoint_url: str | None) -> str:
    """Make `url` the default remote; an S3 endpoint is recorded so pushes and pulls agree on it."""
    if "://" not in url:
        url = str(Path(url).resolve())
    wanted = {"url": url}
    if url.startswith("s3://"):
        endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            wanted["endpointurl"] = endpoint
    current = repo.config["remote"].get(REMOTE_NAME, {})
    if {k: current.get(k) for k in wanted} != wanted or repo.config["core"].get("remote") != REMOTE_NAME:
        with repo.config.edit() as conf:
            conf["remote"][REMOTE_NAME] = wanted
            conf["core"]["remote"] = REMOTE_NAME
    return url
