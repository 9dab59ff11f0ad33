"""Score generated videos on a benchmark: `evaluate_videos` (model-free) and `evaluate_model` (a folder of videos,
generated first from a checkpoint when one is given: what the `evaluate` command and KFP step run).

Under torchrun each rank scores every world_size-th sample and the per-sample results are gathered with
torch.distributed (gloo, objects), so every rank returns the same `EvaluationResult`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from components.evaluate import preprocess
from components.evaluate.benchmark import GT_FRAME_FRACTIONS, Benchmark, BenchmarkSample
from components.evaluate.cache import EmbeddingCache
from components.evaluate.dynamics import dynamic_degree
from components.evaluate.evaluators import EvaluatorSuite
from components.evaluate.metrics import face_similarity, subject_similarity, text_similarity, video_similarity
from components.evaluate.text import clip_normalize
from components.evaluate.toyworld import (
    ToyGroundTruth,
    binding_accuracy,
    reference_fidelity,
    resample_masks,
    score_sample,
    toy_truth_for_benchmark,
)
from components.evaluate.video_io import read_image, sha256_array
from components.media import read_video
from components.storage import file_sha256

VideoInput = str | Path | np.ndarray | tuple[np.ndarray, float]
SUBJECTS_CACHE_VERSION = (
    2  # bump when detection -> crop -> embedding changes (2: zero-area boxes embed white)
)


class EvaluationError(RuntimeError):
    """Generated videos and benchmark do not line up."""


@dataclass
class SampleScores:
    key: str
    sample_id: str
    mode: str
    text_s: float
    vid_s: float
    dynamic: bool
    subj_s: float | None = None
    face_s: float | None = None
    num_frames: int = 0
    fps: float = 0.0
    dync_pair_scores: list[float] = field(default_factory=list)
    toy_fidelity: float | None = None
    toy_binding: float | None = None
    toy_motion: float | None = None
    toy_fidelity_noise: float | None = None  # the same scores of uniform noise: the toy world's chance level
    toy_binding_noise: float | None = None


@dataclass
class EvaluationResult:
    samples: list[SampleScores]
    metrics: dict[str, float]  # "<mode>/<metric>", plus "all/<metric>" and "toy/<metric>"
    random_weights: list[str]
    evaluators: dict[str, Any]
    cache: dict[str, int] = field(default_factory=dict)
    benchmark: dict[str, Any] = field(default_factory=dict)  # `benchmark_identity`: what was scored

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_video_input(
    video: VideoInput, default_fps: float, num_frames: int | None
) -> tuple[np.ndarray, float, str]:
    """Frames, frame rate and content sha of a path, an array (at `default_fps`) or an (array, fps) pair."""
    if isinstance(video, tuple):
        frames, fps = video
        sha = sha256_array(frames)
    elif isinstance(video, np.ndarray):
        frames, fps, sha = video, default_fps, sha256_array(video)
    else:
        decoded = read_video(video)
        frames, fps = decoded.frames, decoded.fps
        sha = file_sha256(video)
        fps = fps or default_fps
    if num_frames is not None:
        frames = frames[:num_frames]
        sha = f"{sha}:{num_frames}"
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise EvaluationError(
            f"generated video must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}"
        )
    return frames, float(fps), sha


class _Scorer:
    """Embeds through the cache; one instance per evaluation."""

    def __init__(self, suite: EvaluatorSuite, cache: EmbeddingCache) -> None:
        self.suite, self.cache = suite, cache

    def _cached(self, sha: str, model_id: str, kind: str, compute: Any) -> dict[str, np.ndarray]:
        hit = self.cache.get(sha, model_id, kind)
        if hit is None:
            hit = compute()
            self.cache.put(sha, model_id, kind, hit)
        return hit

    def clip_frames(self, sha: str, frames: np.ndarray) -> np.ndarray:
        clip = self.suite.clip
        return self._cached(sha, clip.model_id, "clip_frames", lambda: {"emb": clip.frames(frames)})["emb"]

    def clip_text(self, prompt: str) -> np.ndarray:
        import hashlib

        clip = self.suite.clip
        sha = hashlib.sha256(clip_normalize(prompt).encode()).hexdigest()  # the text CLIP actually embeds
        return self._cached(sha, clip.model_id, "clip_text", lambda: {"emb": clip.text(prompt)})["emb"]

    def gt_frames(self, sample: BenchmarkSample) -> np.ndarray:
        if sample.gt_frames:
            sha = "+".join(file_sha256(p) for p in sample.gt_frames)
            frames = lambda: np.stack([read_image(p)[..., :3] for p in sample.gt_frames])  # noqa: E731
        elif sample.gt_video is not None:
            sha = f"{file_sha256(sample.gt_video)}:{GT_FRAME_FRACTIONS}"
            frames = lambda: read_video(sample.gt_video, at=GT_FRAME_FRACTIONS).frames  # noqa: E731
        else:
            raise EvaluationError(
                f"sample {sample.key} has neither ground-truth frames nor a ground-truth video"
            )
        clip = self.suite.clip
        return self._cached(sha, clip.model_id, "clip_gt_frames", lambda: {"emb": clip.frames(frames())})[
            "emb"
        ]

    def references(self, sample: BenchmarkSample) -> dict[str, np.ndarray]:
        dino = self.suite.dino
        out = {}
        for word, paths in sample.references.items():
            embs = []
            for p in paths:
                e = self._cached(
                    file_sha256(p),
                    dino.model_id,
                    "dino_reference",
                    lambda p=p: {"emb": dino(preprocess.dino_reference(read_image(p))[None])[0]},
                )
                embs.append(e["emb"])
            out[word] = np.stack(embs)
        return out

    def subjects(self, sha: str, frames: np.ndarray, words: list[str]) -> list[dict[str, np.ndarray]]:
        import hashlib

        model_id = f"{self.suite.segmenter.model_id}|{self.suite.dino.model_id}"
        kind = (
            f"subjects-v{SUBJECTS_CACHE_VERSION}-"
            + hashlib.sha256("\x00".join(words).encode()).hexdigest()[:12]
        )

        def compute() -> dict[str, np.ndarray]:
            found = self.suite.subject_embeddings(frames, words)
            arrays = {f"{t}_{words.index(w)}": e for t, d in enumerate(found) for w, e in d.items()}
            return {"num_frames": np.array(len(frames)), **arrays}

        data = self._cached(sha, model_id, kind, compute)
        per_frame: list[dict[str, np.ndarray]] = [{} for _ in range(int(data["num_frames"]))]
        for k, v in data.items():
            if k != "num_frames":
                t, i = k.split("_")
                per_frame[int(t)][words[int(i)]] = v
        return per_frame

    def faces(self, sha: str, frames: np.ndarray) -> np.ndarray:
        faces = self.suite.faces
        return self._cached(sha, faces.model_id, "faces", lambda: {"emb": faces.video(frames)})["emb"]

    def face_references(self, sample: BenchmarkSample) -> np.ndarray:
        # the published face PNGs only zero the alpha channel, so RGB is the unmasked crop the reference embeds
        faces = self.suite.faces
        embs = [
            self._cached(
                file_sha256(p),
                faces.model_id,
                "face_reference",
                lambda p=p: {"emb": faces.embed_crops([read_image(p)[..., :3]])[0]},
            )["emb"]
            for p in sample.face_crops
        ]
        return np.stack(embs)

    def score(
        self, sample: BenchmarkSample, video: VideoInput, fps: float, num_frames: int | None
    ) -> SampleScores:
        frames, fps, sha = load_video_input(video, fps, num_frames)
        clip_emb = self.clip_frames(sha, frames)
        scores = SampleScores(
            key=sample.key,
            sample_id=sample.sample_id,
            mode=sample.mode,
            text_s=text_similarity(clip_emb, self.clip_text(sample.prompt)),
            vid_s=video_similarity(clip_emb, self.gt_frames(sample)),
            dynamic=False,
            num_frames=len(frames),
            fps=fps,
        )
        dyn = dynamic_degree(frames, fps, self.suite.flow)
        scores.dynamic, scores.dync_pair_scores = dyn.dynamic, dyn.pair_scores
        if sample.mode == "face":
            if not sample.face_crops:
                raise EvaluationError(f"face sample {sample.key} has no face crops")
            scores.face_s = face_similarity(
                self.faces(sha, frames), len(frames), self.face_references(sample)
            )
        elif sample.references:
            words = list(sample.references)
            scores.subj_s = subject_similarity(self.subjects(sha, frames, words), self.references(sample))
        return scores


def benchmark_identity(benchmark: Benchmark, num_frames: int | None) -> dict[str, Any]:
    """What a score is a score of: samples per mode, a digest of (key, prompt) of every sample, frames kept.

    Two runs are comparable only when these agree (and their evaluators do), whatever the folder is called.
    """
    import hashlib
    import json

    counts: dict[str, int] = {}
    for s in benchmark.samples:
        counts[s.mode] = counts.get(s.mode, 0) + 1
    digest = hashlib.sha256(json.dumps([(s.key, s.prompt) for s in benchmark.samples]).encode()).hexdigest()
    return {
        "name": benchmark.name,
        "layout": benchmark.layout,
        "samples_per_mode": counts,
        "samples_digest": digest[:12],
        "num_frames": num_frames,
    }


def rank_and_world_size() -> tuple[int, int]:
    """(rank, world_size); initialises gloo when launched by torchrun and not yet initialised."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and dist.is_available() and not dist.is_initialized():
        dist.init_process_group("gloo")
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _gather(items: list[Any], world: int) -> list[Any]:
    if world == 1:
        return items
    import torch.distributed as dist

    gathered: list[list[Any]] = [[] for _ in range(world)]
    dist.all_gather_object(gathered, items)
    return [x for part in gathered for x in part]


def _noise_like(frames: np.ndarray, key: str) -> np.ndarray:
    """Uniform per-pixel noise of the video's shape, seeded by the sample key (reproducible chance level)."""
    import zlib

    return np.random.default_rng(zlib.crc32(key.encode())).integers(0, 256, frames.shape, dtype=np.uint8)


def _mean_or_none(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def aggregate(samples: list[SampleScores]) -> dict[str, float]:
    """Per-mode means (Dync-D = fraction of dynamic videos), the same over all samples, and toy means."""
    metrics: dict[str, float] = {}
    groups: dict[str, list[SampleScores]] = {}
    for s in samples:
        groups.setdefault(s.mode, []).append(s)
    groups["all"] = samples
    for mode, group in groups.items():
        metrics[f"{mode}/text_s"] = _mean([s.text_s for s in group])
        metrics[f"{mode}/vid_s"] = _mean([s.vid_s for s in group])
        metrics[f"{mode}/dync_d"] = _mean([float(s.dynamic) for s in group])
        for name in ("subj_s", "face_s"):
            values = [getattr(s, name) for s in group if getattr(s, name) is not None]
            if values:
                metrics[f"{mode}/{name}"] = _mean(values)
    for name, attr in (
        ("reference_fidelity", "toy_fidelity"),
        ("binding_accuracy", "toy_binding"),
        ("motion", "toy_motion"),
        ("reference_fidelity_noise", "toy_fidelity_noise"),
        ("binding_accuracy_noise", "toy_binding_noise"),
    ):
        values = [getattr(s, attr) for s in samples if getattr(s, attr) is not None]
        if values:
            metrics[f"toy/{name}"] = _mean(values)
    return metrics


def evaluate_videos(
    generated: Mapping[str, VideoInput],
    benchmark: Benchmark,
    suite: EvaluatorSuite,
    *,
    cache_dir: str | Path | None = None,
    fps: float = 8.0,
    num_frames: int | None = None,
    toy_truth: Mapping[str, ToyGroundTruth] | None = None,
    progress: bool = True,
) -> EvaluationResult:
    """Score `generated[sample.key]` for every benchmark sample (keys "<mode>/<sample_id>").

    `fps` applies to videos given as bare arrays; `num_frames` keeps the first frames only (the reference's
    `--num_frames`). `toy_truth[key]` adds the toy-world scores for samples of the embedded dataset.
    """
    missing = [s.key for s in benchmark.samples if s.key not in generated]
    if missing:
        raise EvaluationError(f"{len(missing)} benchmark samples have no generated video, e.g. {missing[:3]}")
    if not benchmark.samples:
        raise EvaluationError(f"benchmark {benchmark.name!r} has no samples to evaluate")
    rank, world = rank_and_world_size()
    cache = EmbeddingCache(cache_dir)
    scorer = _Scorer(suite, cache)
    mine = benchmark.samples[rank::world]
    results = []
    for sample in tqdm(mine, desc=f"evaluate[{rank}/{world}]", disable=not progress or rank != 0):
        scores = scorer.score(sample, generated[sample.key], fps, num_frames)
        if toy_truth is not None and sample.key in toy_truth:
            frames, _, _ = load_video_input(generated[sample.key], fps, num_frames)
            truth = toy_truth[sample.key]
            masks = {w: resample_masks(m, len(frames), frames.shape[1:3]) for w, m in truth.masks.items()}
            toy = score_sample(frames, masks, truth.references)
            scores.toy_fidelity, scores.toy_binding = toy.mean_fidelity(), toy.binding_accuracy
            scores.toy_motion = toy.motion.flow_magnitude
            noise = _noise_like(frames, sample.key)
            scores.toy_fidelity_noise = _mean_or_none(
                [
                    reference_fidelity(noise, masks[w], truth.references[w])
                    for w in masks
                    if w in truth.references
                ]
            )
            scores.toy_binding_noise = binding_accuracy(noise, masks, truth.references)
        results.append(scores)
    order = {s.key: i for i, s in enumerate(benchmark.samples)}
    samples = sorted(_gather(results, world), key=lambda s: order[s.key])
    stats = _gather([(cache.hits, cache.misses)], world)
    return EvaluationResult(
        samples=samples,
        metrics=aggregate(samples),
        random_weights=suite.random_weights(),
        evaluators={
            **suite.describe()["config"],
            "flow_backend": suite.config.flow.split(":")[0],
            "model_ids": suite.model_ids(),
        },
        cache={"hits": sum(h for h, _ in stats), "misses": sum(m for _, m in stats)},
        benchmark=benchmark_identity(benchmark, num_frames),
    )


@dataclass
class GenerationConfig:
    """How `evaluate_model` samples the model for each benchmark prompt."""

    steps: int = 20
    guidance: float = 4.0
    seed: int = 0
    frames: int | None = None  # None: the model preset's defaults
    height: int | None = None
    width: int | None = None
    fps: float = 8.0  # frame rate written to the generated mp4s (Dync-D samples at ~8 fps)
    device: str = "cpu"
    # applied to the checkpoint's config when it loads: encoder locations (local or s3://), flow.*, video.*
    model_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)


def _conditioning(sample: BenchmarkSample) -> tuple[dict[str, list[np.ndarray]], np.ndarray | None]:
    references, background = {}, None
    for word, paths in sample.conditioning.items():
        if sample.background is not None and paths == [sample.background]:
            background = read_image(sample.background)[..., :3]
        else:
            references[word] = [preprocess.alpha_to_white(read_image(p)) for p in paths]
    return references, background


def generate_videos(
    checkpoint_dir: str | Path,
    benchmark: Benchmark,
    out_dir: str | Path,
    generation: GenerationConfig,
    progress: bool = True,
) -> dict[str, Path]:
    """Generate one mp4 per benchmark sample into out_dir/<mode>/<sample_id>.mp4 (existing files are kept)."""
    from components.media import write_mp4

    out_dir = Path(out_dir)
    rank, world = rank_and_world_size()
    paths = {s.key: out_dir / f"{s.key}.mp4" for s in benchmark.samples}
    todo = [s for s in benchmark.samples[rank::world] if not paths[s.key].is_file()]
    if todo:
        from components.weights import load_generator  # the one builder: s3:// encoder locations resolve

        generator = load_generator(checkpoint_dir, generation.device, generation.model_overrides)
        for sample in tqdm(todo, desc=f"generate[{rank}/{world}]", disable=not progress or rank != 0):
            references, background = _conditioning(sample)
            video = generator.generate(
                sample.prompt,
                references,
                background=background,
                frames=generation.frames,
                height=generation.height,
                width=generation.width,
                steps=generation.steps,
                guidance=generation.guidance,
                seed=generation.seed,
            )
            write_mp4(video, paths[sample.key], generation.fps)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    return paths


@dataclass
class Evaluation:
    """The video scored for each benchmark sample (by `BenchmarkSample.key`) and the scores."""

    videos: dict[str, Path]
    result: EvaluationResult


def evaluate_model(
    benchmark: Benchmark,
    suite: EvaluatorSuite,
    videos_dir: str | Path,
    *,
    checkpoint_dir: str | Path | None = None,
    generation: GenerationConfig | None = None,
    cache_dir: str | Path | None = None,
    num_frames: int | None = None,
    toy_dataset: str | Path | None = None,
    progress: bool = True,
) -> Evaluation:
    """Score `videos_dir/<mode>/<sample_id>.mp4` of every benchmark sample, generating the missing ones first
    from `checkpoint_dir` (`generate_videos`) when it is given; then `evaluate_videos`.

    `generation.fps` is the rate written to generated videos and assumed for a read one that records none;
    `toy_dataset`, an embedded dataset folder, adds the toy-world scores of the samples it holds.
    """
    generation = generation or GenerationConfig()
    if checkpoint_dir is not None:
        videos = generate_videos(checkpoint_dir, benchmark, videos_dir, generation, progress)
    else:
        videos = {s.key: Path(videos_dir) / f"{s.key}.mp4" for s in benchmark.samples}
    toy_truth = toy_truth_for_benchmark(benchmark, toy_dataset) if toy_dataset is not None else None
    result = evaluate_videos(
        videos,
        benchmark,
        suite,
        cache_dir=cache_dir,
        fps=generation.fps,
        num_frames=num_frames,
        toy_truth=toy_truth,
        progress=progress,
    )
    return Evaluation(videos, result)
