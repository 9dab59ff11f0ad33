"""Benchmark loading, scoring with random-weight evaluators, cache reuse, report and MLflow logging."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from components.evaluate.benchmark import BenchmarkError, load_benchmark
from components.evaluate.evaluators import EvaluatorConfig, EvaluatorSuite
from components.evaluate.report import log_to_mlflow, write_report
from components.evaluate.runner import EvaluationError, evaluate_videos
from components.evaluate.toyworld import ToyGroundTruth
from components.manifest import ManifestError
from components.media import write_mp4


def test_published_layout_modes_and_lists(tmp_path: Path, dog_frames: np.ndarray, make_published):
    bench = load_benchmark(make_published(tmp_path, dog_frames[:4]))
    keys = [s.key for s in bench.samples]
    assert keys == [
        "subject/video1",
        "subject_multi_image/video1",
        "foreground_background/video1",
        "subject/video2",
        "subject_multi_image/video2",
        "foreground_background/video2",
        "face/video2",
    ]
    subject = bench.samples[0]
    assert [p.name for p in subject.conditioning["dog"]] == ["dog.frame2.png"]  # the middle image
    assert set(subject.references) == {"dog", "leash"} and len(subject.gt_frames) == 3
    (tmp_path / "subject_mode_videos.txt").write_text("video1")
    (tmp_path / "subject_mode_prompts.txt").write_text("a listed prompt")
    (tmp_path / "subject_mode_word_tag_single_subject_image.txt").write_text(
        str({"dog": ["x/dog.frame1.png"]})
    )
    listed = load_benchmark(tmp_path, layout="published").select(["subject"])
    assert [(s.key, s.prompt, s.conditioning["dog"][0].name) for s in listed.samples] == [
        ("subject/video1", "a listed prompt", "dog.frame1.png")
    ]
    with pytest.raises(BenchmarkError, match="modes"):
        bench.select(["nope"])


def test_manifest_layout(tmp_path: Path, dog_frames: np.ndarray):
    write_mp4(dog_frames[:4], tmp_path / "media" / "a.mp4")
    ref = tmp_path / "media" / "dog.png"
    cv2.imwrite(str(ref), dog_frames[0][:20, :20])
    entity = {
        "word": "dog",
        "kind": "subject",
        "token_start": 2,
        "token_end": 5,
        "reference_paths": ["media/dog.png"],
        "mask_paths": [],
        "boxes": [],
        "scores": [],
        "areas": [],
    }
    rows = [
        {
            "sample_id": "a",
            "source": "dog.mp4",
            "split": "test",
            "caption": "a dog runs",
            "video_path": "media/a.mp4",
            "background_path": None,
            "entities": [entity],
        },
        {
            "sample_id": "b",
            "source": "dog.mp4",
            "split": "train",
            "caption": "a dog runs",
            "video_path": "media/a.mp4",
            "background_path": None,
            "entities": [entity],
        },
    ]
    pd.DataFrame(rows).to_parquet(tmp_path / "manifest.parquet")
    bench = load_benchmark(tmp_path)
    assert bench.layout == "manifest" and [s.key for s in bench.samples] == [
        "subject/a",
        "subject_multi_image/a",
    ]
    with pytest.raises(ManifestError, match="no rows for split='val'"):
        load_benchmark(tmp_path, split="val")


def test_video_similarity_prefers_the_same_video(suite: EvaluatorSuite, dog_frames, cups_frames):
    from components.evaluate.metrics import video_similarity

    gt = suite.clip.frames(dog_frames[[0, 4, 7]])
    same = video_similarity(suite.clip.frames(dog_frames), gt)
    other = video_similarity(suite.clip.frames(cups_frames), gt)
    assert same > other


def test_evaluate_videos_report_cache_and_mlflow(
    tmp_path: Path, suite, dog_frames, cups_frames, mlflow_store, make_published, face_frames
):
    bench = load_benchmark(make_published(tmp_path / "bench", dog_frames)).select(["subject", "face"])
    generated = {
        "subject/video1": tmp_path / "subject_video1.mp4",
        "subject/video2": (cups_frames, 8.0),
        "face/video2": (face_frames, 8.0),
    }
    write_mp4(dog_frames, generated["subject/video1"], fps=8)
    cache = tmp_path / "cache"
    # toy ground truth at half the video's size and frame count: evaluate_videos resamples it
    left, right = np.zeros((4, 18, 32), bool), np.zeros((4, 18, 32), bool)
    left[:, :, :16], right[:, :, 16:] = True, True
    toy = {
        "subject/video2": ToyGroundTruth(
            "video2", "", {"a": left, "b": right}, {"a": cups_frames[0, :, :32], "b": cups_frames[0, :, 32:]}
        )
    }
    result = evaluate_videos(generated, bench, suite, cache_dir=cache, toy_truth=toy, progress=False)
    by_key = {s.key: s for s in result.samples}
    assert (
        by_key["subject/video1"].vid_s > by_key["subject/video2"].vid_s
    )  # the real clip vs an unrelated one
    assert by_key["face/video2"].face_s > 0 and by_key["face/video2"].subj_s is None
    assert result.metrics["face/face_s"] == by_key["face/video2"].face_s
    assert set(result.random_weights) == {"clip", "dino", "grounding_dino", "sam", "arcface"}
    assert result.cache["misses"] > 0
    assert by_key["subject/video2"].toy_fidelity > 0.8 and result.metrics["toy/reference_fidelity"] > 0.8
    assert by_key["subject/video1"].toy_fidelity is None and "toy/binding_accuracy" in result.metrics

    again = evaluate_videos(generated, bench, suite, cache_dir=cache, toy_truth=toy, progress=False)
    assert again.cache["misses"] == 0 and again.metrics == result.metrics

    paths = write_report(result, tmp_path / "report", bench, generated, max_gifs=2)
    page = paths["html"].read_text()
    assert "Random-weight evaluators" in page and "gifs/subject__video1.generated.gif" in page
    assert (tmp_path / "report" / "gifs" / "subject__video1.gt.gif").is_file()
    assert (
        json.loads(paths["json"].read_text())["metrics"]["subject/text_s"] == result.metrics["subject/text_s"]
    )

    import mlflow

    with mlflow.start_run(experiment_id=mlflow_store) as run:
        log_to_mlflow(result, tmp_path / "report")
    logged = mlflow.get_run(run.info.run_id)
    assert logged.data.metrics["eval/face/face_s"] == pytest.approx(result.metrics["face/face_s"])
    assert logged.data.tags["evaluator.random_weights"] == "clip,dino,grounding_dino,sam,arcface"
    assert logged.data.tags["evaluator.flow"] == "farneback"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/report.html", "evaluation/report.json", "evaluation/gifs"} <= artifacts

    with pytest.raises(EvaluationError, match="no generated video"):
        evaluate_videos({}, bench, suite, progress=False)


def test_subject_score_is_zero_when_nothing_is_detected(tmp_path: Path, dog_frames, make_published):
    from components.evaluate.metrics import subject_similarity

    small = dict(grounding_short_side=48, grounding_max_side=96)
    blind = EvaluatorSuite(EvaluatorConfig(box_threshold=1.0, **small))
    refs = {"dog": np.ones((1, 32)), "leash": np.ones((1, 32))}
    assert subject_similarity(blind.subject_embeddings(dog_frames[:2], list(refs)), refs) == 0.0
    # accepting every box and mask runs grounding -> SAM -> white-masked crop -> DINO on every frame
    permissive = EvaluatorSuite(EvaluatorConfig(box_threshold=0.0, mask_threshold=-1.0, **small))
    bench = load_benchmark(make_published(tmp_path, dog_frames[:2])).select(["subject"], limit=1)
    result = evaluate_videos({"subject/video1": (dog_frames[:2], 8.0)}, bench, permissive, progress=False)
    assert 0.0 < result.samples[0].subj_s <= 1.0


def test_evaluate_model_generates_then_scores(tmp_path: Path, suite, dog_frames, make_published):
    from components.evaluate.runner import GenerationConfig, evaluate_model
    from model.alchemist import VideoAlchemist
    from model.config import preset

    VideoAlchemist(preset("tiny")).save_pretrained(tmp_path / "ckpt")
    bench = load_benchmark(make_published(tmp_path / "bench", dog_frames[:4])).select(["subject"], limit=1)
    videos = tmp_path / "out" / "generated"
    evaluation = evaluate_model(
        bench,
        suite,
        videos,
        checkpoint_dir=tmp_path / "ckpt",
        generation=GenerationConfig(steps=1),
        progress=False,
    )
    video, result = videos / "subject" / "video1.mp4", evaluation.result
    assert evaluation.videos == {"subject/video1": video}
    assert video.is_file() and result.samples[0].num_frames == preset("tiny").video.frames
    assert result.samples[0].fps == 8.0 and -1.0 <= result.metrics["subject/text_s"] <= 1.0
    mtime = video.stat().st_mtime_ns
    again = evaluate_model(bench, suite, videos, checkpoint_dir=tmp_path / "ckpt", progress=False)
    assert video.stat().st_mtime_ns == mtime  # existing videos are reused
    read = evaluate_model(bench, suite, videos, progress=False)  # no checkpoint: the folder's videos only
    assert read.result.metrics == again.result.metrics == result.metrics


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_cuda_evaluators_match_cpu(dog_frames):
    small = dict(grounding_short_side=48, grounding_max_side=96, box_threshold=0.0, mask_threshold=-1.0)
    cpu = EvaluatorSuite(EvaluatorConfig(device="cpu", **small))
    gpu = EvaluatorSuite(EvaluatorConfig(device="cuda", **small))
    np.testing.assert_allclose(gpu.clip.frames(dog_frames), cpu.clip.frames(dog_frames), atol=1e-3)
    assert len(gpu.subject_embeddings(dog_frames[:2], ["dog"])) == 2  # grounding, SAM and DINO run on the GPU
