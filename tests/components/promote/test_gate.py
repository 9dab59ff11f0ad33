from __future__ import annotations

from pathlib import Path

import pytest

from components.promote.gate import CHALLENGER, CHAMPION, PREVIOUS, Evaluated, PromotionError, decide, promote
from components.promote.policy import GatePolicy, PolicyError, load_policy, parse_policy

POLICY = GatePolicy(
    name="test",
    thresholds={"subject/subj_s": 0.5},
    must_not_regress={"subject/text_s": 0.01},
    must_improve=("subject/subj_s",),
)


SAME = Evaluated(data_rev="a" * 32 + ".dir", protocol="bench1", samples_per_mode="subject=3")


def _candidate(
    experiment: str,
    metrics: dict[str, float],
    random: str = "",
    protocol: str = "bench1",
    data_rev: str | None = "a" * 32 + ".dir",
) -> str:
    import mlflow

    with mlflow.start_run(experiment_id=experiment, run_name="pipe/stage2/tiny/data-aaaaaaaa") as run:
        mlflow.log_text('{"config": {}}', "checkpoint/config.json")
        mlflow.log_metrics({f"eval/{k}": v for k, v in metrics.items()})
        mlflow.set_tags({"evaluator.random_weights": random, "evaluator.protocol": protocol})
        mlflow.set_tag("evaluator.samples_per_mode", "subject=3" if protocol == "bench1" else "subject=6")
        if data_rev is not None:
            mlflow.set_tag("data.rev", data_rev)
    return run.info.run_id


def _alias(name: str, alias: str) -> str | None:
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return str(mlflow.MlflowClient().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def test_decide_rows_explain_each_rule():
    passed, checks = decide(
        POLICY,
        {"subject/subj_s": 0.6, "subject/text_s": 0.25},
        [],
        {"subject/subj_s": 0.55, "subject/text_s": 0.27},
        evaluated=SAME,
        champion_evaluated=SAME,
    )
    assert not passed
    by_rule = {(c.metric, c.rule): c for c in checks}
    assert by_rule[("subject/subj_s", "threshold")].passed
    assert by_rule[("subject/subj_s", "improve")].passed
    regress = by_rule[("subject/text_s", "no_regress")]
    assert not regress.passed and regress.bound == pytest.approx(0.26)
    passed, checks = decide(POLICY, {"subject/text_s": 0.3}, [], None, evaluated=SAME)
    assert not passed and "missing" in next(c.reason for c in checks if c.rule == "threshold")


def test_unlike_benchmarks_are_not_compared():
    candidate, champion = {"subject/subj_s": 0.6, "subject/text_s": 0.2}, {"subject/subj_s": 0.9}
    other = Evaluated(data_rev="b", protocol="bench2", samples_per_mode="subject=6")
    passed, checks = decide(POLICY, candidate, [], champion, evaluated=SAME, champion_evaluated=other)
    unlike = next(c for c in checks if c.rule == "benchmark")
    assert not passed and not unlike.passed
    assert "subject=3" in unlike.reason and "subject=6" in unlike.reason and "re-evaluate" in unlike.reason
    assert all(c.champion is None for c in checks)  # nothing was compared with the unlike champion
    lenient = GatePolicy(**{**POLICY.__dict__, "must_improve": (), "allow_unlike_baseline": True})
    passed, checks = decide(lenient, candidate, [], champion, evaluated=SAME, champion_evaluated=other)
    assert passed and "allowed by policy" in next(c.reason for c in checks if c.rule == "benchmark")
    unknown = Evaluated(data_rev="b")  # a champion scored before runs recorded their benchmark
    passed, _ = decide(POLICY, candidate, [], champion, evaluated=SAME, champion_evaluated=unknown)
    assert not passed


def test_candidate_without_data_revision_fails_unless_allowed():
    metrics = {"subject/subj_s": 0.6, "subject/text_s": 0.3}
    passed, checks = decide(POLICY, metrics, [], None, evaluated=Evaluated(protocol="bench1"))
    data = next(c for c in checks if c.rule == "data")
    assert not passed and "--data-rev" in data.reason
    allowing = GatePolicy(**{**POLICY.__dict__, "allow_unknown_data_rev": True})
    passed, checks = decide(allowing, metrics, [], None, evaluated=Evaluated(protocol="bench1"))
    assert passed and "allowed by policy" in next(c.reason for c in checks if c.rule == "data")


def test_policy_files_parse_and_bad_policy_is_named():
    demo, default = load_policy("demo"), load_policy("default")
    assert demo.allow_random_evaluators and "RANDOM" in demo.description
    assert not default.allow_random_evaluators and default.thresholds
    with pytest.raises(PolicyError, match="subj_s"):
        parse_policy({"name": "x", "thresholds": {"subj_s": 0.1}})
    with pytest.raises(PolicyError, match="allow_random_evaluators"):
        parse_policy({"name": "x", "allow_random_evaluators": "yes"})
    with pytest.raises(PolicyError, match="allow_unlike_baseline"):
        parse_policy({"name": "x", "allow_unlike_baseline": 1})
    assert demo.allow_unknown_data_rev and demo.allow_unlike_baseline
    assert not default.allow_unknown_data_rev and not default.allow_unlike_baseline


def test_pass_then_fail_then_idempotent(mlflow_store: str, tmp_path: Path):
    published: list[str] = []
    first = _candidate(mlflow_store, {"subject/subj_s": 0.6, "subject/text_s": 0.25})
    d1 = promote(first, "alchemist", POLICY, publish=published.append)
    assert d1.passed and _alias("alchemist", CHAMPION) == d1.version
    assert published == [f"models:/alchemist/{d1.version}"]

    better = _candidate(mlflow_store, {"subject/subj_s": 0.7, "subject/text_s": 0.26})
    d2 = promote(better, "alchemist", POLICY, publish=published.append)
    assert d2.passed and d2.baseline_run_id == first
    assert _alias("alchemist", CHAMPION) == d2.version and _alias("alchemist", PREVIOUS) == d1.version

    again = promote(better, "alchemist", POLICY, publish=published.append)
    assert again.passed and again.actions == [] and again.baseline_run_id == first
    assert len(published) == 2

    worse = _candidate(mlflow_store, {"subject/subj_s": 0.65, "subject/text_s": 0.2})
    d3 = promote(worse, "alchemist", POLICY, publish=published.append)
    assert not d3.passed and _alias("alchemist", CHALLENGER) == d3.version
    assert _alias("alchemist", CHAMPION) == d2.version and len(published) == 2
    assert any("text_s" in r for r in d3.reasons()) and any("subj_s" in r for r in d3.reasons())
    assert promote(worse, "alchemist", POLICY).actions == []

    import mlflow

    run = mlflow.get_run(worse)
    assert run.data.tags["promotion.decision"] == "fail"
    summary = Path(mlflow.artifacts.download_artifacts(run_id=worse, artifact_path="promotion/summary.md"))
    assert "| subject/text_s | no_regress |" in summary.read_text() and "FAIL" in summary.read_text()
    versions = mlflow.MlflowClient().search_model_versions("name='alchemist'")
    assert len(versions) == 3  # re-runs registered nothing new


def test_random_evaluators_refused_unless_policy_allows(mlflow_store: str):
    run = _candidate(mlflow_store, {"subject/subj_s": 0.9, "subject/text_s": 0.3}, random="clip,dino")
    refused = promote(run, "alchemist", POLICY)
    assert not refused.passed and len(refused.reasons()) == 1 and "clip, dino" in refused.reasons()[0]
    assert _alias("alchemist", CHAMPION) is None and _alias("alchemist", CHALLENGER) == refused.version

    allowing = GatePolicy(**{**POLICY.__dict__, "name": "allowing", "allow_random_evaluators": True})
    accepted = promote(run, "alchemist", allowing)
    assert accepted.passed and _alias("alchemist", CHAMPION) == accepted.version


def test_run_without_model_artifact_is_refused_by_name(mlflow_store: str):
    import mlflow

    with mlflow.start_run(experiment_id=mlflow_store) as run:
        mlflow.log_metric("eval/subject/subj_s", 0.9)
    with pytest.raises(PromotionError, match="no artifacts under 'checkpoint'"):
        promote(run.info.run_id, "alchemist", POLICY)
    with pytest.raises(PromotionError, match="not found"):
        promote("0" * 32, "alchemist", POLICY)


def test_pass_publishes_the_checkpoint_into_a_triton_repository(mlflow_store: str, tmp_path: Path):
    import mlflow

    from components.export import repository_publisher
    from components.promote.gate import exported_publisher
    from model.alchemist import VideoAlchemist
    from model.config import preset

    VideoAlchemist(preset("tiny")).save_pretrained(tmp_path / "ckpt")
    with mlflow.start_run(experiment_id=mlflow_store) as run:
        mlflow.log_artifacts(str(tmp_path / "ckpt"), "checkpoint")
        mlflow.log_metrics({"eval/subject/subj_s": 0.6, "eval/subject/text_s": 0.3})
        mlflow.set_tags({"evaluator.random_weights": "", "data.rev": "c" * 32 + ".dir"})
    publish = repository_publisher(tmp_path / "repo", "video_alchemist")
    decision = promote(run.info.run_id, "served", POLICY, publish=publish)
    version_dir = tmp_path / "repo" / "video_alchemist" / decision.version
    assert decision.passed and (version_dir / "checkpoint" / "model.safetensors").is_file()
    assert (tmp_path / "repo" / "video_alchemist" / "config.pbtxt").is_file()
    assert promote(run.info.run_id, "served", POLICY, publish=publish).actions == []

    # The pipeline's publish: an exported version copied into serving under the registry's number.
    serving = tmp_path / "serving"
    exported_publisher(tmp_path / "repo", "video_alchemist", decision.version, str(serving))("models:/m/7")
    served = serving / "video_alchemist"
    assert sorted(p.name for p in served.iterdir()) == ["7", "README.md", "config.pbtxt"]
    weights = "checkpoint/model.safetensors"
    assert (served / "7" / weights).read_bytes() == (version_dir / weights).read_bytes()


def test_version_carries_description_and_tags(mlflow_store: str):
    import mlflow

    run = _candidate(mlflow_store, {"subject/subj_s": 0.6, "subject/text_s": 0.25}, random="clip")
    allowing = GatePolicy(**{**POLICY.__dict__, "name": "allowing", "allow_random_evaluators": True})
    decision = promote(run, "alchemist", allowing)
    mv = mlflow.MlflowClient().get_model_version("alchemist", decision.version)
    assert mv.tags["data.rev"] == "a" * 32 + ".dir" and mv.tags["evaluator.random_weights"] == "clip"
    assert mv.tags["gate.decision"] == "pass" and mv.tags["gate.policy"] == "allowing"
    assert mv.tags["score.subject/subj_s"] == "0.6000" and mv.tags["evaluator.protocol"] == "bench1"
    assert "PASS under policy 'allowing'" in mv.description and "subject/subj_s 0.600" in mv.description
    assert "pipe/stage2/tiny/data-aaaaaaaa" in mv.description


def test_regating_the_champion_under_another_policy_is_refused(mlflow_store: str):
    import mlflow

    run = _candidate(mlflow_store, {"subject/subj_s": 0.6, "subject/text_s": 0.25})
    first = promote(run, "alchemist", POLICY)
    assert first.passed and _alias("alchemist", CHAMPION) == first.version
    stricter = GatePolicy(**{**POLICY.__dict__, "name": "stricter", "thresholds": {"subject/subj_s": 0.9}})
    tags_before = mlflow.get_run(run).data.tags
    with pytest.raises(PromotionError, match="current champion.*refused"):
        promote(run, "alchemist", stricter)
    assert _alias("alchemist", CHAMPION) == first.version and _alias("alchemist", CHALLENGER) is None
    after = mlflow.get_run(run).data.tags
    assert {k: v for k, v in after.items() if k.startswith("promotion.")} == {
        k: v for k, v in tags_before.items() if k.startswith("promotion.")
    }
    assert promote(run, "alchemist", POLICY).actions == []  # the same policy still re-runs idempotently


def test_unlike_champion_fails_the_gate_in_the_registry(mlflow_store: str):
    champion = _candidate(mlflow_store, {"subject/subj_s": 0.6, "subject/text_s": 0.25}, protocol="bench2")
    assert promote(champion, "alchemist", POLICY).passed
    candidate = _candidate(mlflow_store, {"subject/subj_s": 0.8, "subject/text_s": 0.3})
    decision = promote(candidate, "alchemist", POLICY)
    assert not decision.passed and decision.baseline_run_id == champion
    assert any("benchmark" in r and "subject=6" in r for r in decision.reasons())
    assert _alias("alchemist", CHALLENGER) == decision.version
