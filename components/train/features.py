"""Encode once: what the frozen encoders make of every sample, stored in shards, so training never loads them.

At Wan scale the frozen encoders (UMT5-XXL alone is 5.7 B parameters, and the video VAE) cost more memory
and time than the trained step, and their outputs never change during training. `encode_dataset` runs them
once over a mined dataset and writes VAE latents, text states and reference image tokens per sample to
safetensors shards under a folder named by a key over the manifest, each encoder's identity and the sample
size; `FeatureDataset` reads them back as `EncodedBatch`es, which `VideoAlchemist.training_loss` takes in
place of raw clips.

Decision: references are encoded without augmentation (the anti copy-paste augmentation acts on pixels before
the image encoder), so a run on the cache trains without it; the cache records that, and training from raw
clips keeps it. Re-running `encode_dataset` resumes: finished shards are kept.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from components.storage import file_sha256
from components.train.dataset import Batch, ManifestDataset, Sample, SampleSize
from model.batch import EncodedBatch, EncodedConditioning, EntityReference, TrainingBatch
from model.binding import EntityTokens

INDEX = "index.json"
NULL_FILE = "null.safetensors"


class FeatureCacheError(ValueError):
    """The cache is missing, incomplete, or was made by other encoders or data than this run uses."""


def encoder_identity(model: Any) -> dict[str, Any]:
    """Each frozen encoder's identity: its config, and for random weights a hash of the weights themselves."""
    identity: dict[str, Any] = {}
    for name, section in (("text_encoder", "text"), ("image_encoder", "image"), ("vae", "vae")):
        encoder, config = getattr(model, name), asdict(getattr(model.config, section))
        if encoder.random_weights:
            digest = hashlib.sha256()
            for key, tensor in sorted(encoder.state_dict().items()):
                digest.update(key.encode())
                digest.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
            config["weights_sha256"] = digest.hexdigest()
        identity[name] = config
    return identity


def cache_key(dataset_dir: Path, model: Any, size: SampleSize) -> str:
    spec = {
        "manifest": file_sha256(Path(dataset_dir) / "manifest.parquet"),
        "encoders": encoder_identity(model),
        "size": asdict(size),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def sample_tensors(model: Any, sample: Sample) -> dict[str, torch.Tensor]:
    """One sample through the frozen encoders, as named tensors."""
    batch = TrainingBatch(
        video=sample.video[None],
        prompts=[sample.caption],
        entities=[[EntityReference(word, images) for word, images in sample.entities]],
        backgrounds=[sample.background],
    )
    encoded = model.encode_batch(batch)
    c = encoded.conditioning
    tensors = {"latents": encoded.latents[0], "text": c.text[0], "text_mask": c.text_mask[0]}
    for j, tokens in enumerate(c.entities[0]):
        tensors[f"e{j}.image"] = tokens.image_tokens
        if tokens.word_tokens is not None:
            tensors[f"e{j}.word"] = tokens.word_tokens
    return tensors


@dataclass
class EncodeResult:
    folder: Path
    samples: int
    skipped: list[str]


@torch.no_grad()
def encode_dataset(
    model: Any,
    dataset_dir: Path,
    out: Path,
    size: SampleSize,
    split: str | None = "train",
    data_rev: str | None = None,
    shard_size: int = 64,
    seed: int = 0,
    progress: bool = True,
) -> EncodeResult:
    """Write the cache for `model`'s encoders over the dataset; returns its keyed folder."""
    model.eval()
    dataset = ManifestDataset(dataset_dir, size, split, augment=None, p_background=1.0, seed=seed)
    folder = Path(out) / cache_key(dataset_dir, model, size)
    folder.mkdir(parents=True, exist_ok=True)
    null = model.encode_text([""])
    save_file(
        {"text": null.states[0].contiguous(), "mask": null.mask[0].contiguous()}, str(folder / NULL_FILE)
    )
    shards, skipped = [], []
    starts = range(0, len(dataset), shard_size)
    for number, start in enumerate(tqdm(starts, desc="encode", unit="shard", disable=not progress)):
        path = folder / f"shard-{number:05d}.safetensors"
        meta_path = path.with_suffix(".json")
        if path.is_file() and meta_path.is_file():  # finished by an earlier run
            shards.append(json.loads(meta_path.read_text()))
            skipped += shards[-1]["skipped"]
            continue
        tensors, samples, missing = {}, {}, []
        for index in range(start, min(start + shard_size, len(dataset))):
            sample_id, sample = dataset[(0, index)]
            if sample is None:
                missing.append(sample_id)
                continue
            named = sample_tensors(model, sample)
            tensors.update({f"{sample_id}/{k}": v.detach().cpu().clone() for k, v in named.items()})
            samples[sample_id] = ["entity"] * len(sample.entities) + ["background"] * (
                sample.background is not None
            )
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file(tensors, str(tmp))
        os.replace(tmp, path)  # atomic: a killed run never leaves a half shard that looks finished
        shard = {"file": path.name, "samples": samples, "skipped": missing}
        meta_path.write_text(json.dumps(shard))
        shards.append(shard)
        skipped += missing
    index = {
        "key": folder.name,
        "data_rev": data_rev,
        "split": split,
        "size": asdict(size),
        "encoders": encoder_identity(model),
        "reference_augmentation": False,
        "shards": shards,
    }
    (folder / INDEX).write_text(json.dumps(index, indent=2, default=str))
    return EncodeResult(folder, sum(len(s["samples"]) for s in shards), skipped)


@dataclass
class EncodedSample:
    sample_id: str
    tensors: dict[str, torch.Tensor]
    kinds: list[str]  # "entity" or "background", in the order the binder sees them


class FeatureDataset:
    """The cache as a dataset: `(epoch, index)` -> (sample_id, EncodedSample), like `ManifestDataset`."""

    def __init__(self, folder: Path, model: Any | None = None, dataset_dir: Path | None = None,
                 size: SampleSize | None = None) -> None:  # fmt: skip
        self.folder = Path(folder)
        if not (self.folder / INDEX).is_file():
            raise FeatureCacheError(f"{self.folder} is not a finished feature cache ({INDEX} missing)")
        self.index = json.loads((self.folder / INDEX).read_text())
        if model is not None and dataset_dir is not None and size is not None:
            expected = cache_key(dataset_dir, model, size)
            if expected != self.index["key"]:
                raise FeatureCacheError(
                    f"feature cache {self.folder} (key {self.index['key']}) was made from other data, encoders "
                    f"or sample size than this run (key {expected}); run `alchemist data encode` again"
                )
        self.items = [
            (s["file"], sid, kinds) for s in self.index["shards"] for sid, kinds in s["samples"].items()
        ]
        null_path = str(self.folder / NULL_FILE)
        with safe_open(null_path, framework="pt") as f:
            self.null_text, self.null_mask = f.get_tensor("text"), f.get_tensor("mask")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[str, EncodedSample]:
        _, index = key if isinstance(key, tuple) else (0, key)
        file, sample_id, kinds = self.items[index]
        prefix = f"{sample_id}/"
        with safe_open(str(self.folder / file), framework="pt") as shard:
            tensors = {k[len(prefix) :]: shard.get_tensor(k) for k in shard.keys() if k.startswith(prefix)}
        return sample_id, EncodedSample(sample_id, tensors, kinds)

    def collate_batch(self, items: list[tuple[str, EncodedSample]]) -> Batch:
        """The loader's collate_fn: cached samples are never unreadable, so nothing is skipped."""
        return Batch(self.collate([s for _, s in items]), [sid for sid, _ in items], len(items))

    def collate(self, samples: list[EncodedSample]) -> EncodedBatch:
        """Stack latents; pad text states to the longest prompt (masked), as the text encoder pads."""
        length = max(s.tensors["text"].shape[0] for s in samples)
        pad = torch.nn.functional.pad
        text = torch.stack(
            [pad(s.tensors["text"], (0, 0, 0, length - len(s.tensors["text"]))) for s in samples]
        )
        mask = torch.stack(
            [pad(s.tensors["text_mask"], (0, length - len(s.tensors["text_mask"]))) for s in samples]
        )
        entities = [
            [EntityTokens(s.tensors[f"e{j}.image"], s.tensors.get(f"e{j}.word")) for j in range(len(s.kinds))]
            for s in samples
        ]
        conditioning = EncodedConditioning(text, mask, self.null_text[None], self.null_mask[None], entities)
        return EncodedBatch(torch.stack([s.tensors["latents"] for s in samples]), conditioning)
