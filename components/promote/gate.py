"""Promotion gate over the MLflow model registry.

`decide` is pure: candidate metrics (+ champion metrics) and a policy give pass/fail with one row per
check. `promote` reads the candidate run, finds the baseline (the current `champion`), decides, and
applies the decision idempotently:

- pass: register (or reuse) the run's model version, publish it for serving, alias it `champion` and
  the former champion `previous-champion`;
- fail: register (or reuse) the version and alias it `challenger`; nothing served changes.

The decision, its baseline and the policy fingerprint are recorded as run tags, and a markdown table
as the run artifact `promotion/summary.md`; the registry version gets a description and tags (data
revision, random-weight parts, headline scores, decision and policy). A re-run with the same policy
compares against the recorded baseline (not against itself once it became champion), so it reaches the
same decision, and every action checks the registry first, so nothing happens twice. Re-gating the
current champion under another policy is refused (`PromotionError`): the state stays as it was.

Like with like: no-regress and must-improve compare only against a champion evaluated on the same
benchmark (tag `evaluator.protocol`: samples, modes, frames, evaluators); otherwise the comparison fails,
or, where the policy allows it, is skipped and says so. A candidate without a data revision fails unless
the policy allows it.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from components.promote.policy import GatePolicy
from components.storage import is_s3, upload

CHAMPION, PREVIOUS, CHALLENGER = "champion", "previous-champion", "challenger"
METRIC_PREFIX = "eval/"
RANDOM_TAG = "evaluator.random_weights"
PROTOCOL_TAG = "evaluator.protocol"
DATA_REV_TAG = "data.rev"
MODEL_ARTIFACT = "checkpoint"  # where training logs the final model (components.train.trainer)
EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2  # `alchemist promote` exit codes (README.md)
Publish = Callable[[str], None]


class PromotionError(RuntimeError):
    """The candidate run or the registry is not in a state the gate can act on."""


@dataclass
class Check:
    metric: str
    rule: str  # threshold | no_regress | improve | evaluators | data | benchmark
    candidate: float | None
    champion: float | None
    bound: float | None
    passed: bool
    reason: str


@dataclass
class GateDecision:
    passed: bool
    checks: list[Check]
    policy: GatePolicy
    run_id: str = ""
    model_name: str = ""
    baseline_run_id: str | None = None
    version: str | None = None
    actions: list[str] = field(default_factory=list)  # what this call changed (empty on an idempotent re-run)

    @property
    def decision(self) -> str:
        return "pass" if self.passed else "fail"

    def reasons(self) -> list[str]:
        return [f"{c.metric} ({c.rule}): {c.reason}" for c in self.checks if not c.passed]

    def text(self) -> str:
        """Plain lines for a terminal of any width: the decision, then one line per check."""
        lines = [
            f"promotion gate: {self.decision.upper()} (policy {self.policy.name} {self.policy.fingerprint()}; "
            f"run {self.run_id}; baseline {self.baseline_run_id or 'none'}; "
            f"{self.model_name} version {self.version or '-'})"
        ]
        lines += [
            f"  {'pass' if c.passed else 'FAIL'} {c.metric} ({c.rule}): {c.reason}" for c in self.checks
        ]
        return "\n".join(lines) + "\n"

    def markdown(self) -> str:
        def num(v: float | None) -> str:
            return "-" if v is None else f"{v:.4f}"

        lines = [
            f"## Promotion gate: **{self.decision.upper()}**",
            "",
            f"- policy: `{self.policy.name}` ({self.policy.fingerprint()}); allows random evaluators: "
            f"{self.policy.allow_random_evaluators}, unknown data revision: {self.policy.allow_unknown_data_rev}, "
            f"a champion on another benchmark: {self.policy.allow_unlike_baseline}",
            f"- candidate run: `{self.run_id}`; baseline (champion) run: `{self.baseline_run_id or 'none'}`",
            f"- model: `{self.model_name}` version {self.version or '-'}",
            "",
            "| metric | rule | candidate | champion | threshold/bound | result | reason |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in self.checks:
            lines.append(
                f"| {c.metric} | {c.rule} | {num(c.candidate)} | {num(c.champion)} | {num(c.bound)} | "
                f"{'pass' if c.passed else 'FAIL'} | {c.reason} |"
            )
        if self.policy.description:
            lines += ["", f"> {self.policy.description}"]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Evaluated:
    """What the gate reads from an evaluated run besides its metrics."""

    data_rev: str | None = None  # None: the run has no data revision
    protocol: str | None = None  # `evaluator.protocol`: None when the run predates it
    samples_per_mode: str = ""

    @classmethod
    def of(cls, run) -> Evaluated:
        tags = run.data.tags
        rev = tags.get(DATA_REV_TAG)
        return cls(
            None if rev in (None, "", "unknown") else rev,
            tags.get(PROTOCOL_TAG),
            tags.get("evaluator.samples_per_mode", ""),
        )


def _comparable(policy: GatePolicy, candidate: Evaluated, champion: Evaluated) -> Check | None:
    """None when both runs were scored on the same benchmark; else the check row saying why they were not."""
    if candidate.protocol is not None and candidate.protocol == champion.protocol:
        return None
    differs = (
        f"candidate benchmark {candidate.protocol or 'unknown'} ({candidate.samples_per_mode or '?'}) vs "
        f"champion {champion.protocol or 'unknown'} ({champion.samples_per_mode or '?'})"
    )
    ok = policy.allow_unlike_baseline
    reason = differs + (
        "; not compared with the champion, allowed by policy"
        if ok
        else "; no-regress needs the same samples, modes and evaluators: re-evaluate one of them"
    )
    return Check("benchmark", "benchmark", None, None, None, ok, reason)


def decide(
    policy: GatePolicy,
    candidate: dict[str, float],
    random_evaluators: list[str] | None,
    champion: dict[str, float] | None,
    *,
    evaluated: Evaluated | None = None,
    champion_evaluated: Evaluated | None = None,
) -> tuple[bool, list[Check]]:
    """Every check of `policy`; `random_evaluators=None` means the run does not say (treated as random).

    `evaluated` is the candidate's data revision and benchmark (default: unknown data, unknown benchmark);
    with a champion, `champion_evaluated` is its benchmark, and unlike benchmarks are not compared.
    """
    evaluated = evaluated or Evaluated()
    checks: list[Check] = []
    if evaluated.data_rev is None:
        ok = policy.allow_unknown_data_rev
        reason = "the run records no data revision (data.rev); " + (
            "allowed by policy" if ok else "train with --data-rev (printed by `alchemist data version`)"
        )
        checks.append(Check("data.rev", "data", None, None, None, ok, reason))
    if champion is not None:
        unlike = _comparable(policy, evaluated, champion_evaluated or Evaluated())
        if unlike is not None:
            checks.append(unlike)
            champion = None  # nothing below compares with a champion scored on another benchmark
    if random_evaluators is None or random_evaluators:
        named = (
            "unknown (run lacks the evaluator.random_weights tag)"
            if random_evaluators is None
            else ", ".join(random_evaluators)
        )
        ok = policy.allow_random_evaluators
        reason = f"random-weight evaluators: {named}; " + (
            "allowed by policy" if ok else "policy forbids promoting on them"
        )
        checks.append(Check("evaluators", "evaluators", None, None, None, ok, reason))

    def value(metrics: dict[str, float] | None, name: str) -> float | None:
        v = (metrics or {}).get(name)
        return None if v is None or math.isnan(v) else v

    for metric, minimum in sorted(policy.thresholds.items()):
        cand = value(candidate, metric)
        if cand is None:
            checks.append(
                Check(
                    metric,
                    "threshold",
                    None,
                    value(champion, metric),
                    minimum,
                    False,
                    "missing from the candidate run",
                )
            )
            continue
        ok = cand >= minimum
        reason = f"{cand:.4f} {'>=' if ok else '<'} threshold {minimum:.4f}"
        checks.append(Check(metric, "threshold", cand, value(champion, metric), minimum, ok, reason))
    for metric, tolerance in sorted(policy.must_not_regress.items()):
        cand, champ = value(candidate, metric), value(champion, metric)
        if cand is None:
            checks.append(
                Check(metric, "no_regress", None, champ, None, False, "missing from the candidate run")
            )
        elif champ is None:
            reason = (
                "no comparable champion"
                if champion is None
                else "champion has no value; nothing to regress from"
            )
            checks.append(Check(metric, "no_regress", cand, None, None, True, reason))
        else:
            bound = champ - tolerance
            ok = cand >= bound
            reason = f"{cand:.4f} {'>=' if ok else '<'} champion {champ:.4f} - tolerance {tolerance:.4f}"
            checks.append(Check(metric, "no_regress", cand, champ, bound, ok, reason))
    for metric in sorted(policy.must_improve):
        cand, champ = value(candidate, metric), value(champion, metric)
        if cand is None:
            checks.append(
                Check(metric, "improve", None, champ, None, False, "missing from the candidate run")
            )
        elif champ is None:
            checks.append(Check(metric, "improve", cand, None, None, True, "no comparable champion"))
        else:
            ok = cand > champ
            checks.append(
                Check(
                    metric,
                    "improve",
                    cand,
                    champ,
                    champ,
                    ok,
                    f"{cand:.4f} {'>' if ok else '<='} champion {champ:.4f}",
                )
            )
    return all(c.passed for c in checks), checks


def _alias_version(client, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def _eval_metrics(run) -> dict[str, float]:
    return {k[len(METRIC_PREFIX) :]: v for k, v in run.data.metrics.items() if k.startswith(METRIC_PREFIX)}


def _ensure_version(client, name: str, run, artifact_path: str, actions: list[str]) -> str:
    """The registry version made from this run, registering it once."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
        actions.append(f"created registered model {name}")
    existing = client.search_model_versions(f"name='{name}' and run_id='{run.info.run_id}'")
    if existing:
        return str(min(int(v.version) for v in existing))
    import mlflow

    try:  # a model logged with mlflow.<flavor>.log_model (MLflow 3 LoggedModel)
        version = mlflow.register_model(f"runs:/{run.info.run_id}/{artifact_path}", name).version
    except MlflowException:  # plain run artifacts (a checkpoint folder): register the artifact location
        source = f"{run.info.artifact_uri.rstrip('/')}/{artifact_path}"
        version = client.create_model_version(name, source=source, run_id=run.info.run_id).version
    actions.append(f"registered {name} version {version}")
    return str(version)


def _version_record(decision: GateDecision, run, metrics: dict[str, float]) -> tuple[str, dict[str, str]]:
    """Description and tags for the registry version: what a reviewer needs without opening the run."""
    tags = run.data.tags
    headline = {m: metrics[m] for m in decision.policy.metrics() if m in metrics}
    record = {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name or "",
        DATA_REV_TAG: tags.get(DATA_REV_TAG) or "unknown",
        "encoders.random_weights": tags.get("encoders.random_weights", "unknown"),
        RANDOM_TAG: tags.get(RANDOM_TAG, "unknown") or "none",
        PROTOCOL_TAG: tags.get(PROTOCOL_TAG, "unknown"),
        "evaluator.samples_per_mode": tags.get("evaluator.samples_per_mode", "unknown"),
        "gate.decision": decision.decision,
        "gate.policy": decision.policy.name,
        "gate.policy_fingerprint": decision.policy.fingerprint(),
        **{f"score.{m}": f"{v:.4f}" for m, v in headline.items()},
    }
    scores = ", ".join(f"{m} {v:.3f}" for m, v in headline.items()) or "none"
    description = (
        f"Video Alchemist from run {record['run_name'] or run.info.run_id} ({run.info.run_id}), trained on "
        f"data revision {record[DATA_REV_TAG]}. Gate: {decision.decision.upper()} under policy "
        f"'{decision.policy.name}' ({decision.policy.fingerprint()}). Headline scores: {scores}. "
        f"Random-weight encoders: {record['encoders.random_weights']}; random-weight evaluators: "
        f"{record[RANDOM_TAG]}."
    )
    if decision.reasons():
        description += " Failed: " + "; ".join(decision.reasons())
    return description[:5000], record


def _describe_version(client, name: str, version: str, description: str, tags: dict[str, str]) -> bool:
    """Write what differs; True when anything was written."""
    mv = client.get_model_version(name, version)
    changed = False
    if (mv.description or "") != description:
        client.update_model_version(name, version, description=description)
        changed = True
    for key, value in tags.items():
        if mv.tags.get(key) != value:
            client.set_model_version_tag(name, version, key, value)
            changed = True
    return changed


def _refuse_regating_champion(client, name: str, run, policy: GatePolicy) -> None:
    """The champion was decided under one policy; re-deciding it under another would leave it both
    `champion` and `challenger`. Refused: nothing changes (promote a new candidate instead)."""
    champion = _alias_version(client, name, CHAMPION)
    if champion is None or client.get_model_version(name, champion).run_id != run.info.run_id:
        return
    decided = run.data.tags.get("promotion.policy_fingerprint")
    if decided is not None and decided != policy.fingerprint():
        raise PromotionError(
            f"run {run.info.run_id} is {name} version {champion}, the current {CHAMPION}, decided under policy "
            f"{run.data.tags.get('promotion.policy', '?')!r} ({decided}); re-gating it under {policy.name!r} "
            f"({policy.fingerprint()}) is refused: gate a new candidate, which is compared against it"
        )


def promote(
    run_id: str,
    model_name: str,
    policy: GatePolicy,
    *,
    artifact_path: str = MODEL_ARTIFACT,
    publish: Publish | None = None,
) -> GateDecision:
    """Decide on `run_id` under `policy` and apply the decision to `model_name` in the MLflow registry."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        run = client.get_run(run_id)
    except MlflowException as err:
        raise PromotionError(f"run_id={run_id!r} not found in the tracking store: {err}") from err
    if not client.list_artifacts(run_id, artifact_path):
        raise PromotionError(
            f"run {run_id} has no artifacts under {artifact_path!r}; gate the training run, which logs its "
            f"final model under {MODEL_ARTIFACT!r} (or pass --artifact-path)"
        )
    _refuse_regating_champion(client, model_name, run, policy)
    tags = run.data.tags
    random_tag = tags.get(RANDOM_TAG)
    random_evaluators = None if random_tag is None else [x for x in random_tag.split(",") if x]

    if tags.get("promotion.policy_fingerprint") == policy.fingerprint():
        baseline = (
            tags.get("promotion.baseline_run_id") or None
        )  # re-run: same baseline as the first decision
        baseline = None if baseline == "none" else baseline
    else:
        champion_version = _alias_version(client, model_name, CHAMPION)
        baseline = None
        if champion_version is not None:
            baseline = client.get_model_version(model_name, champion_version).run_id
            if baseline == run_id:
                previous = _alias_version(client, model_name, PREVIOUS)
                baseline = client.get_model_version(model_name, previous).run_id if previous else None
    baseline_run = client.get_run(baseline) if baseline else None
    metrics = _eval_metrics(run)
    passed, checks = decide(
        policy,
        metrics,
        random_evaluators,
        _eval_metrics(baseline_run) if baseline_run else None,
        evaluated=Evaluated.of(run),
        champion_evaluated=Evaluated.of(baseline_run) if baseline_run else None,
    )

    actions: list[str] = []
    version = _ensure_version(client, model_name, run, artifact_path, actions)
    model_uri = f"models:/{model_name}/{version}"
    if passed:
        mv = client.get_model_version(model_name, version)
        if publish is not None and mv.tags.get("published") != "true":
            publish(model_uri)
            client.set_model_version_tag(model_name, version, "published", "true")
            actions.append(f"published {model_uri}")
        current = _alias_version(client, model_name, CHAMPION)
        if current != version:
            if current is not None:
                client.set_registered_model_alias(model_name, PREVIOUS, current)
                actions.append(f"{PREVIOUS} -> version {current}")
            client.set_registered_model_alias(model_name, CHAMPION, version)
            actions.append(f"{CHAMPION} -> version {version}")
        if _alias_version(client, model_name, CHALLENGER) == version:
            client.delete_registered_model_alias(model_name, CHALLENGER)
            actions.append(f"removed {CHALLENGER} from version {version}")
    elif _alias_version(client, model_name, CHALLENGER) != version:
        client.set_registered_model_alias(model_name, CHALLENGER, version)
        actions.append(f"{CHALLENGER} -> version {version}")

    decision = GateDecision(passed, checks, policy, run_id, model_name, baseline, version, actions)
    if _describe_version(client, model_name, version, *_version_record(decision, run, metrics)):
        actions.append(f"described version {version} (data, random parts, scores, decision)")
    record = {
        "promotion.decision": decision.decision,
        "promotion.policy": policy.name,
        "promotion.policy_fingerprint": policy.fingerprint(),
        "promotion.baseline_run_id": baseline or "none",
        "promotion.model_version": version,
        "promotion.reason": "; ".join(decision.reasons())[:4000] or "all checks passed",
    }
    if any(tags.get(k) != v for k, v in record.items()):
        for k, v in record.items():
            client.set_tag(run_id, k, v)
        client.log_text(run_id, decision.markdown(), "promotion/summary.md")
        actions.append("recorded decision on the run")
    return decision


def exported_publisher(
    exported: Path, triton_name: str, exported_version: str, serving_repository: str
) -> Publish:
    """Publish version `exported_version` of the exported repository (with config.pbtxt and model card) into
    `serving_repository` (a folder or s3:// prefix) under the registry version's number."""

    def publish(model_uri: str) -> None:
        version = model_uri.rsplit("/", 1)[-1]
        with tempfile.TemporaryDirectory() as tmp:
            staged = Path(tmp) / triton_name
            shutil.copytree(exported / triton_name / exported_version, staged / version)
            for name in ("config.pbtxt", "README.md"):
                shutil.copy2(exported / triton_name / name, staged / name)
            if is_s3(serving_repository):
                upload(staged, f"{serving_repository.rstrip('/')}/{triton_name}")
            else:
                shutil.copytree(staged, Path(serving_repository) / triton_name, dirs_exist_ok=True)
        print(f"published {model_uri} as {serving_repository}/{triton_name}/{version}")

    return publish
