"""KFP step: run the Great Expectations suite over the versioned dataset; a failure stops the run."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def validate(
    dataset: Input[Dataset], report: Output[HTML], details: Output[Artifact], summary: Output[Metrics]
) -> bool:
    """Validate with the default bounds; write the reports first, then raise with the readable summary.

    `report` is the summary page (what the KFP UI shows), `details` the folder with validation.json and one
    GX data-docs page per table. The data revision travels in the dataset's metadata.
    """
    import json
    import shutil
    from pathlib import Path

    from components.validate import validate_dataset

    outcome = validate_dataset(dataset.path, details.path)
    shutil.copyfile(outcome.html_path, report.path)
    stats = outcome.statistics
    for name in ("evaluated_expectations", "successful_expectations", "unsuccessful_expectations"):
        summary.log_metric(name, stats[name])
    summary.log_metric("num_samples", stats.get("num_samples", 0))
    summary.metadata["data_rev"] = dataset.metadata.get("data_rev", "")
    # kfp.local keeps metrics in metadata only and treats a cached artifact without a file as a miss.
    Path(summary.path).write_text(json.dumps(summary.metadata, indent=2))
    print(outcome.summary())
    print(f"validation report: {Path(report.path)}")
    outcome.raise_for_failure()
    return outcome.success
