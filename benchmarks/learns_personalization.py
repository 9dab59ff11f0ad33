"""Does training learn personalization? Train on the mined embedded dataset, then generate four ways.

(a) correct references, (b) references shuffled across samples, (c) no references, (d) a model trained
without word-token binding (correct references). Scores come from `components.evaluate.toyworld` against the
embedded dataset's ground truth:
- reference fidelity: colour statistics inside the region where each entity should be, against its photo;
- lane assignment (binding): in each frame, do the two entities' lanes match their own references better
  than the swapped pair? It scores which appearance went where, wherever along its lane the entity is;
- mask binding: the same per ground-truth mask (needs the entity exactly where the real clip has it);
- denoising binding: the real clip, noised, is denoised better with each reference on its own word than
  with the two swapped (the classifier reading of a diffusion model; 95% interval over all held-out pairs).

Generation runs twice per condition: from noise, and from the real clip noised to t = --clip-strength, which
keeps the clip's layout and motion so that the references alone decide what each entity looks like. All
four conditions start from the same noised clip, so what it leaks is the same for each; (c) measures it.

The world. The benchmark generates its own embedded dataset (`WORLD`): every clip holds two identities of
any kind (not always a subject and an object), equally sized, in separate lanes, over any backdrop
(`--backdrops space` keeps only deep space). In the default world the subject is the larger entity, so size
and kind alone tell which reference goes where and a model never needs the words.

Why the captions are rewritten. In the embedded dataset every identity always carries the same word ("cat"
is always the chelsea photo), so the text alone says how each entity looks: a model can score well with no
references at all, and binding has nothing to add because the word already names the appearance. The
benchmark therefore trains and evaluates on a derived manifest (same mined clips, crops and backgrounds)
whose entity words name each entity's ROLE instead of its identity: "the upper moves right and the lower
moves left across the grass". Position and direction come from the text, appearance only from the
references, and which reference goes to the upper or the lower entity only from binding.

Training. Stage 1 (text only) never uses the binder, so it is trained once and both arms of the ablation
start stage 2 from it. The `small` preset adds frame positions to RoPE (model/README.md): without them,
"upper" could not be told apart from "lower" at this budget and binding stayed at chance.

Run (about 20 minutes on 2 CPU cores; generates and mines the embedded dataset first if missing; finished
training stages are reused, so a re-run only evaluates):
    .venv/bin/python benchmarks/learns_personalization.py --out work/bench/run
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from components.embedded import EmbeddedConfig  # noqa: E402
from components.embedded.personalization import WORLD  # noqa: E402
from components.evaluate import toyworld  # noqa: E402
from components.evaluate.reference_check import (  # noqa: E402
    EvalSample,
    clip_masks,
    condition_references,
    load_rgb,
    load_rgba,
)
from components.manifest import read_manifest  # noqa: E402
from components.media import read_video  # noqa: E402

ROLES = ("upper", "lower")
MIN_LANE_GAP = 0.12  # fraction of the frame height between two entities' mean heights
# The benchmark's own embedded world (`personalization.WORLD`): every clip has two identities of any kind,
# equally sized, in separate lanes. With the default world (one subject and one object, subjects larger) a
# model can tell which reference belongs where from size and kind alone and never needs the words.
BACKDROP_SETS = {"space": ("hubble",), "all": None}
PROBE_TIMES = (0.25, 0.5, 0.75)  # noise levels of the denoising binding probe
EXPERIMENT = "video-alchemist-learns-personalization"


# ----------------------------------------------------------------------------- data
def ensure_dataset(embedded: Path, mined: Path, samples: int, world: EmbeddedConfig) -> None:
    from components.embedded import generate_embedded_dataset
    from components.mine.config import MinerConfig
    from components.mine.run import mine_dataset

    if not (embedded / "ground_truth" / "ground_truth.parquet").is_file():
        generate_embedded_dataset(embedded, samples=samples, seed=0, config=world)
    made_with = json.loads((embedded / "ground_truth" / "embedded.json").read_text())["config"]
    if made_with != json.loads(json.dumps(dataclasses.asdict(world))):
        raise SystemExit(
            f"{embedded} was generated with {made_with}, not this benchmark's world {world}; "
            "pass another --embedded/--mined folder or delete it"
        )
    if not (mined / "manifest.parquet").is_file():
        # The miner's segmentation is fed the exact masks: this benchmark measures training, and the offline
        # motion miner cannot tell two equally sized entities apart (it names the larger one the subject), so
        # it pairs crops with the wrong words about half of the time here (benchmarks/README.md).
        config = MinerConfig(workers=1, segmenter="masks", masks_dir=str(embedded / "ground_truth" / "masks"))
        mine_dataset(str(embedded / "videos"), str(embedded / "captions.jsonl"), str(mined), config)


def describe(masks: np.ndarray) -> tuple[float, int]:
    """(mean height of the entity as a fraction of the frame, horizontal direction +1 right / -1 left)."""
    ys, xs = [], []
    for m in masks:
        if m.any():
            rows, cols = np.nonzero(m)
            ys.append(rows.mean() / m.shape[0])
            xs.append(cols.mean())
    return float(np.mean(ys)), (1 if xs[-1] >= xs[0] else -1)


def role_caption(moves: list[tuple[str, int]], background_word: str, background_phrase: str) -> str:
    parts = [f"the {role} moves {'right' if d > 0 else 'left'}" for role, d in moves]
    return f"{' and '.join(parts)} across {background_phrase}" if background_phrase else " and ".join(parts)


def span(caption: str, word: str) -> tuple[int, int]:
    match = re.search(rf"\b{re.escape(word)}\b", caption)
    if match is None:
        raise ValueError(f"word {word!r} not in caption {caption!r}")
    return match.start(), match.end()


def build_role_dataset(
    embedded: Path, mined: Path, out: Path, frames: int, size: int
) -> tuple[Path, list[EvalSample]]:
    """Write the derived manifest (media shared with the mined dataset) and the held-out evaluation set."""
    from components.embedded import BACKDROPS
    from components.ground_truth import load_ground_truth

    truth = load_ground_truth(embedded)
    photos = embedded / "ground_truth" / "identities"
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "media").exists():
        (out / "media").symlink_to((mined / "media").resolve())
    rows, evals, dropped = [], [], 0
    for row in read_manifest(mined, split=None):
        gt = truth[truth["sample_id"] == row["sample_id"]]
        fg = gt[gt["kind"] != "background"]
        bg = gt[gt["kind"] == "background"]
        if fg.empty or bg.empty:
            dropped += 1
            continue
        described = {}
        for r in fg.itertuples(index=False):
            masks = clip_masks(list(r.mask_paths), row["clip_start"], row["clip_end"], frames, size)
            if not masks.any(axis=(1, 2)).all():
                break
            described[r.word] = (r.identity, masks, *describe(masks))
        if len(described) != len(fg):
            dropped += 1
            continue
        if len(described) == 2:
            (w1, d1), (w2, d2) = sorted(described.items(), key=lambda kv: kv[1][2])
            if d2[2] - d1[2] < MIN_LANE_GAP:
                dropped += 1  # crossing paths: no upper/lower roles
                continue
            role_of = {w1: "upper", w2: "lower"}
        else:
            ((w, d),) = described.items()
            role_of = {w: "upper" if d[2] < 0.5 else "lower"}
        backdrop = next(b for b in BACKDROPS.values() if b.word == bg.iloc[0]["word"])
        ordered = sorted(role_of, key=lambda w: ROLES.index(role_of[w]))
        caption = role_caption(
            [(role_of[w], described[w][3]) for w in ordered], backdrop.word, backdrop.phrase
        )
        entities = []
        for e in row["entities"]:
            word = role_of.get(e["word"], e["word"])
            if e["word"] not in role_of and e["word"] != backdrop.word:
                continue
            start, end = span(caption, word)
            entities.append({**e, "word": word, "token_start": start, "token_end": end})
        rows.append({**row, "caption": caption, "entities": entities})
        if row["split"] != "train":
            refs = {
                role_of[e["word"]]: [load_rgb(mined / p) for p in e["reference_paths"]]
                for e in row["entities"]
                if e["word"] in role_of
            }
            photo = {w: load_rgba(photos / f"{described[w][0]}.png") for w in role_of}
            evals.append(
                EvalSample(
                    sample_id=row["sample_id"],
                    video=read_video(mined / row["video_path"], count=frames, cover=(size, size)).frames,
                    caption=caption,
                    roles={role_of[w]: described[w][0] for w in role_of},
                    masks={role_of[w]: described[w][1] for w in role_of},
                    truth={role_of[w]: photo[w] for w in role_of},
                    references=refs,
                    background=load_rgb(mined / row["background_path"])
                    if row.get("background_path")
                    else None,
                )
            )
    pq.write_table(pa.Table.from_pylist(rows), out / "manifest.parquet")
    (out / "derived.json").write_text(
        json.dumps({"from": str(mined), "rows": len(rows), "dropped": dropped, "eval": len(evals)}, indent=2)
    )
    return out, evals


# ----------------------------------------------------------------------------- training
def train_stage(
    args: argparse.Namespace, manifest: Path, out: Path, stage: int, binding: bool, init_from: Path | None
) -> Path:
    """One training stage; a finished stage is reused and an interrupted one resumes."""
    from components.train.config import DataConfig, OptimConfig, TrainConfig
    from components.train.trainer import train

    final = out / f"stage{stage}" / "final"
    if (final / "result.json").is_file():
        return final
    config = TrainConfig(
        out=out,
        preset=args.preset,
        stage=str(stage),
        steps=args.stage1_steps if stage == 1 else args.stage2_steps,
        seed=args.seed,
        binding=binding,
        init_from=init_from,
        model_overrides={
            "video": {"height": args.size, "width": args.size},
            "image": {"token_grid": args.token_grid},
        },
        resume=True,
        checkpoint_every=200,
        keep_last=1,
        sample_every=-1,
        tracking_uri=args.tracking_uri,
        experiment=EXPERIMENT,
        run_name="shared" if stage == 1 else ("binding" if binding else "no-binding"),
        log_checkpoint_artifact=False,
        log_every=10,
        data=DataConfig(
            manifest=manifest, split="train", batch_size=args.batch_size, cache_dir=args.out / "cache"
        ),
        optim=OptimConfig(lr=args.lr, warmup_steps=args.warmup, min_lr_ratio=0.1, ema_decay=0.999),
    )
    result = train(config)
    if result.final_dir is None:
        raise RuntimeError(f"stage {stage} training in {out} stopped before it finished; re-run to resume")
    return result.final_dir


# ----------------------------------------------------------------------------- evaluation
def evaluate(
    model_dir: Path, samples: list[EvalSample], condition: str, args: argparse.Namespace, strength: float
) -> dict:
    """Generate every sample under one condition and score it. strength 1 generates from noise; below 1
    the solve starts from the real clip noised to t = strength, which keeps its layout (see LAYOUT_KEPT)."""
    from components.train.trainer import load_trained
    from model.generator import Generator

    generator = Generator(load_trained(model_dir, use_ema=True), device="cpu")
    fidelity, binding, lanes, per_sample = [], [], [], []
    for i, sample in enumerate(samples):
        video = generator.generate(
            sample.caption,
            references=condition_references(samples, i, condition, ROLES),
            background=sample.background,
            steps=args.sample_steps,
            guidance=args.guidance,
            seed=args.seed + i,
            source_video=sample.video if strength < 1 else None,
            strength=strength,
        )
        scores = toyworld.score_sample(video, sample.masks, sample.truth)
        lane = toyworld.lane_assignment_accuracy(video, sample.masks, sample.truth)
        if (mean := scores.mean_fidelity()) is not None:
            fidelity.append(mean)
        if scores.binding_accuracy is not None:
            binding.append(scores.binding_accuracy)
        if lane is not None:
            lanes.append(lane)
        per_sample.append(
            {
                "sample_id": sample.sample_id,
                "fidelity": mean,
                "binding": scores.binding_accuracy,
                "lane_assignment": lane,
                "roles": sample.roles,
            }
        )
    return {
        "fidelity": mean_or_nan(fidelity),
        "binding_accuracy": mean_or_nan(binding),
        "lane_assignment": mean_or_nan(lanes),
        "fidelity_n": len(fidelity),
        "binding_n": len(binding),
        "samples": per_sample,
    }


def mean_or_nan(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


@torch.no_grad()
def denoising_binding(model_dir: Path, samples: list[EvalSample], args: argparse.Namespace) -> dict:
    """Does the model denoise the real clip better with the true word-reference pairing than swapped?

    The clip is noised to each of PROBE_TIMES with a shared draw and denoised twice, once with each
    reference on its own word and once with the two role words' references exchanged; a trial is won when
    the true pairing gives the lower flow loss (an exact tie counts half: a model that ignores the words
    is indifferent). This is the classifier reading of a diffusion model: the layout is half visible in
    the noisy clip, so the probe isolates whether references follow their words, which generation mixes
    with whether the model can lay out a scene from the prompt at all.
    """
    from components.train.trainer import load_trained
    from model.flow import add_noise, velocity_target
    from model.generator import GenerationRequest, Generator

    generator = Generator(load_trained(model_dir, use_ema=True), device="cpu")
    model, wins = generator.model, []
    noise_source = torch.Generator().manual_seed(args.seed)
    for sample in samples:
        if len(sample.references) != 2:
            continue
        refs = {role: imgs[:3] for role, imgs in sample.references.items()}
        upper, lower = refs["upper"], refs["lower"]
        pairings = [refs, {"upper": lower, "lower": upper}]
        conditions = [
            model.condition(
                *generator.model_inputs([GenerationRequest(sample.caption, pairing, sample.background)])
            )
            for pairing in pairings
        ]
        x0 = generator.source_latents(sample.video, *sample.video.shape[:3])[None]
        for t in PROBE_TIMES:
            noise = torch.randn(x0.shape, generator=noise_source)
            tt = torch.tensor([t])
            x_t, target = add_noise(x0, noise, tt), velocity_target(x0, noise)
            true_loss, swapped_loss = (
                float(((model.dit(x_t, tt, cond) - target) ** 2).mean()) for cond in conditions
            )
            wins.append(0.5 if true_loss == swapped_loss else float(true_loss < swapped_loss))
    accuracy = mean_or_nan(wins)
    return {"accuracy": accuracy, "ci95": wilson_interval(accuracy, len(wins)), "n": len(wins)}


def wilson_interval(p: float, n: int, z: float = 1.96) -> list[float]:
    """95% Wilson score interval of a proportion; unlike p +- z*se it stays honest at 0 and 1."""
    if n == 0:
        return [float("nan"), float("nan")]
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [float(centre - half), float(centre + half)]


def log_to_mlflow(args: argparse.Namespace, report: dict) -> str:
    import mlflow

    from components.train.tracking import tracking_uri, use_experiment

    use_experiment(tracking_uri(args.tracking_uri), EXPERIMENT)
    with mlflow.start_run(run_name="learns-personalization") as run:
        mlflow.log_params({k: v for k, v in vars(args).items() if k != "tracking_uri"})
        for condition, scores in report["conditions"].items():
            for mode in ("from_noise", "from_clip"):
                for metric in ("fidelity", "lane_assignment", "binding_accuracy"):
                    mlflow.log_metric(f"{condition}/{mode}/{metric}", scores[mode][metric])
            if "denoising_binding" in scores:
                mlflow.log_metric(f"{condition}/denoising_binding", scores["denoising_binding"]["accuracy"])
        mlflow.log_dict(report, "report.json")
        mlflow.set_tags(
            {
                "benchmark": "learns_personalization",
                "verdict": report["verdict"],
                # Scores of a model on random-weight encoders say whether it learns, never how good it is.
                "encoders.random_weights": ",".join(report["random_weight_encoders"]) or "none",
            }
        )
        return run.info.run_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--backdrops", choices=sorted(BACKDROP_SETS), default="all", help="backdrops of the generated world"
    )
    parser.add_argument(
        "--embedded",
        type=Path,
        help="embedded dataset folder, made if missing (default work/bench/embedded-<backdrops>)",
    )
    parser.add_argument(
        "--mined",
        type=Path,
        help="mined dataset folder, mined if missing (default work/bench/mined-<backdrops>-gt)",
    )
    parser.add_argument(
        "--samples", type=int, default=480, help="clips to generate when the dataset is missing"
    )
    parser.add_argument("--out", type=Path, default=Path("work/bench/run"), help="output folder")
    parser.add_argument("--preset", default="small", help="model preset")
    parser.add_argument("--size", type=int, default=32, help="video height and width (frames: the preset's)")
    parser.add_argument("--stage1-steps", type=int, default=200, help="stage-1 optimizer steps (shared)")
    parser.add_argument(
        "--stage2-steps", type=int, default=1200, help="stage-2 optimizer steps (per arm of the ablation)"
    )
    parser.add_argument(
        "--token-grid", type=int, default=4, help="reference tokens per image side (l = 1 + grid^2)"
    )
    parser.add_argument("--batch-size", type=int, default=8, help="micro-batch size")
    parser.add_argument("--lr", type=float, default=7e-4, help="peak learning rate")
    parser.add_argument("--warmup", type=int, default=30, help="warmup steps per stage")
    parser.add_argument(
        "--eval-samples", type=int, default=24, help="held-out samples generated per condition"
    )
    parser.add_argument("--sample-steps", type=int, default=12, help="sampler steps per video")
    parser.add_argument(
        "--clip-strength",
        type=float,
        default=0.6,
        help="noise level the layout-keeping generations start from (t of the real clip; 1 = pure noise)",
    )
    parser.add_argument("--guidance", type=float, default=4.0, help="classifier-free guidance scale")
    parser.add_argument("--seed", type=int, default=0, help="seed")
    parser.add_argument(
        "--tracking-uri", default=None, help="MLflow URI (default: env or sqlite:///work/mlflow.db)"
    )
    args = parser.parse_args(argv)

    from model.config import preset

    video = preset(args.preset).video
    started = time.perf_counter()
    world = dataclasses.replace(WORLD, backdrops=BACKDROP_SETS[args.backdrops])
    args.embedded = args.embedded or Path(f"work/bench/embedded-{args.backdrops}")
    args.mined = args.mined or Path(f"work/bench/mined-{args.backdrops}-gt")
    ensure_dataset(args.embedded, args.mined, args.samples, world)
    manifest, evals = build_role_dataset(
        args.embedded, args.mined, args.out / "roles", video.frames, args.size
    )
    pairs = [s for s in evals if len(s.masks) == 2]  # every held-out pair feeds the (cheap) probe
    generated = (pairs + [s for s in evals if len(s.masks) == 1])[: args.eval_samples]
    print(
        f"derived manifest {manifest}: {len(read_manifest(manifest, 'train'))} train rows; "
        f"{len(generated)} held-out samples generated per condition, {len(pairs)} held-out pairs probed",
        flush=True,
    )

    # Stage 1 (text only) never touches the binder, so both arms of the ablation start from one stage-1 model
    # and differ only in stage 2: with or without the entity word in the binding.
    timings = {}
    t0 = time.perf_counter()
    stage1 = train_stage(args, manifest, args.out / "shared", 1, binding=True, init_from=None)
    timings["train_stage1_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with_binding = train_stage(args, manifest, args.out / "binding", 2, binding=True, init_from=stage1)
    timings["train_stage2_binding_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    without_binding = train_stage(args, manifest, args.out / "no-binding", 2, binding=False, init_from=stage1)
    timings["train_stage2_no_binding_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    arms = {
        "a_correct_refs": (with_binding, "correct"),
        "b_shuffled_refs": (with_binding, "shuffled"),
        "c_no_refs": (with_binding, "none"),
        "d_no_binding": (without_binding, "correct"),
    }
    conditions = {
        name: {
            mode: evaluate(model_dir, generated, refs, args, strength)
            for mode, strength in (("from_noise", 1.0), ("from_clip", args.clip_strength))
        }
        for name, (model_dir, refs) in arms.items()
    }
    for name in ("a_correct_refs", "d_no_binding"):
        conditions[name]["denoising_binding"] = denoising_binding(arms[name][0], pairs, args)
    timings["evaluate_s"] = time.perf_counter() - t0
    report = {
        "device": "cpu",
        "preset": args.preset,
        "world": dataclasses.asdict(world),
        "random_weight_encoders": random_weight_encoders(with_binding),
        "conditions": conditions,
        **verdict_of(conditions),
        "timings": timings,
        "total_s": time.perf_counter() - started,
    }
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    print_report(report, f"{video.frames}x{args.size}x{args.size}", len(generated))
    run_id = log_to_mlflow(args, report)
    print(f"MLflow run {run_id}")
    return 0 if report["verdict"] == "learns" else 1


def random_weight_encoders(model_dir: Path) -> list[str]:
    return json.loads((model_dir / "config.json").read_text()).get("random_weights", [])


MARGIN = 0.05  # generation scores closer than this are within sample-to-sample noise at 24 samples


def verdict_of(conditions: dict) -> dict:
    """Checks and a verdict. The denoising probe needs its 95% interval clear of chance and of (d)."""
    a, b, c, d = (conditions[k] for k in ("a_correct_refs", "b_shuffled_refs", "c_no_refs", "d_no_binding"))
    probe_a, probe_d = a["denoising_binding"], d["denoising_binding"]

    def ahead(x: dict, y: dict, metric: str) -> bool:
        return x[metric] > y[metric] + MARGIN

    checks = {
        "fidelity a > b (from noise)": ahead(a["from_noise"], b["from_noise"], "fidelity"),
        "fidelity a > c (from noise)": ahead(a["from_noise"], c["from_noise"], "fidelity"),
        "denoising binding a above chance": probe_a["ci95"][0] > 0.5,
        "denoising binding a > d": probe_a["ci95"][0] > probe_d["ci95"][1],
        "lane assignment a > d (from clip)": ahead(a["from_clip"], d["from_clip"], "lane_assignment"),
        "lane assignment a > d (from noise)": ahead(a["from_noise"], d["from_noise"], "lane_assignment"),
    }
    return {"checks": checks, "verdict": "learns" if all(checks.values()) else "does-not-learn"}


def print_report(report: dict, size: str, generated: int) -> None:
    print(
        f"\nlearns_personalization (cpu, preset {report['preset']} at {size}, {generated} generated samples)"
    )
    header = f"{'condition':<16} {'mode':<11} {'fidelity':>9} {'lane assign':>12} {'mask binding':>13}"
    print(header)
    for name, scores in report["conditions"].items():
        for mode in ("from_noise", "from_clip"):
            s = scores[mode]
            print(
                f"{name:<16} {mode:<11} {s['fidelity']:>9.4f} {s['lane_assignment']:>12.4f} "
                f"{s['binding_accuracy']:>13.4f}"
            )
    for name, scores in report["conditions"].items():
        if probe := scores.get("denoising_binding"):
            low, high = probe["ci95"]
            print(f"denoising binding {name}: {probe['accuracy']:.3f} [{low:.3f}, {high:.3f}] n={probe['n']}")
    for name, ok in report["checks"].items():
        print(f"check {name}: {'PASS' if ok else 'FAIL'}")
    timings = {k: round(v) for k, v in report["timings"].items()}
    print(f"verdict: {report['verdict']}; timings {json.dumps(timings)}")


if __name__ == "__main__":
    raise SystemExit(main())
