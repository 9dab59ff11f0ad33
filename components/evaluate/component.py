"""KFP step: generate from the trained model on the test split and score it (MSRVTT-Personalization + toy world)."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def evaluate(
    model: Input[Model],
    dataset: Input[Dataset],
    modes: str,
    split: str,
    limit: int,
    steps: int,
    evaluators: dict,
    ground_truth: str,
    tracking_uri: str,
    report: Output[HTML],
    details: Output[Artifact],
    scores: Output[Metrics],
) -> str:
    """Score the model and log `eval/...` metrics and the report into its training run; returns that run id.

    `modes` is a comma list ("" = every mode the split has), `limit` samples per mode (0 = all),
    `evaluators` EvaluatorConfig fields (weight locations; unset = random weights, tagged as such),
    `ground_truth` the embedded dataset folder whose ground truth adds toy-world scores ("" = none).
    """
    import json
    import shutil
    from pathlib import Path

    import mlflow

    from components.evaluate.benchmark import load_benchmark
    from components.evaluate.evaluators import EvaluatorConfig, EvaluatorSuite
    from components.evaluate.report import log_to_mlflow, report_context, write_report
    from components.evaluate.runner import GenerationConfig, evaluate_model

    out = Path(details.path)
    bench = load_benchmark(dataset.path, "manifest", split).select(
        [m for m in modes.split(",") if m] or None, limit or None
    )
    evaluation = evaluate_model(
        bench,
        EvaluatorSuite(EvaluatorConfig(**evaluators)),
        out / "generated",
        checkpoint_dir=model.path,
        generation=GenerationConfig(steps=steps),
        toy_dataset=ground_truth or None,
    )
    result = evaluation.result
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    context = report_context(
        model.metadata["mlflow_run_id"],
        f"{model.metadata.get('preset', '?')} preset, stage {int(model.metadata.get('stage', 2))} model",
    )
    pages = write_report(result, out, bench, evaluation.videos, context=context)
    shutil.copyfile(out / "report.html", report.path)
    for name, value in result.metrics.items():
        if value == value:  # NaN: a metric without samples in this mode
            scores.log_metric(name.replace("/", "_"), value)
    scores.metadata["random_weights"] = ",".join(result.random_weights)
    # kfp.local keeps metrics in metadata only and treats a cached artifact without a file as a miss.
    Path(scores.path).write_text(json.dumps(scores.metadata, indent=2))
    run_id = log_to_mlflow(result, out, run_id=model.metadata["mlflow_run_id"])
    print(f"evaluated {len(result.samples)} samples -> MLflow run {run_id}; report {sorted(pages)}")
    return run_id
