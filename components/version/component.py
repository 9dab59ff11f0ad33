"""KFP step: record the mined dataset with DVC and hand its revision to every later step."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def version(dataset: Input[Dataset], dvc_repo: str, dvc_remote: str, versioned: Output[Dataset]) -> str:
    """`dvc add` + `dvc push` a copy of the dataset inside `dvc_repo`; returns the data revision.

    DVC tracks data inside its repository only, and the input artifact may be read-only (an S3 download on the
    cluster), so the dataset is copied to `<dvc_repo>/datasets/mined` first. `dvc_remote` "" means the local
    folder beside the repository. The output artifact carries the revision and remote in its metadata.
    """
    import shutil
    from pathlib import Path

    from components.version import version_dataset

    target = Path(dvc_repo) / "datasets" / "mined"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(dataset.path, target)
    result = version_dataset(target, dvc_repo, remote=dvc_remote or None)
    shutil.copytree(target, versioned.path)
    versioned.metadata.update(
        data_rev=result.rev, remote=result.remote, files=result.num_files, bytes=result.size
    )
    print(f"data revision {result.rev} ({result.num_files} files, pushed {result.pushed}) -> {result.remote}")
    return result.rev
