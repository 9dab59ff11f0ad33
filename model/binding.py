"""Binding of image and word (the paper's entity binding).

For entity n, the frozen image encoder gives l tokens x_n per reference image. The text encoder's output
tokens of that entity's word, c_n, are flattened, repeated l times and concatenated with x_n along channels;
a linear projection with a residual connection gives f_n. The personalization context is the
concatenation f = [f_1, ..., f_N], padded across the batch with a key mask. No entity index enters f, so
cross-attention over it is invariant to the order of the entities.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn


class EntityWordNotFoundError(ValueError):
    def __init__(self, word: str, prompt: str) -> None:
        super().__init__(f"entity word {word!r} does not occur in the prompt {prompt!r}")
        self.word = word
        self.prompt = prompt


def word_forms(word: str) -> list[str]:
    """Surface forms that count as the entity word: itself and its simple plural/singular."""
    base = word.strip().lower()
    forms = [base, base + "s", base + "es"]
    if base.endswith("y"):
        forms.append(base[:-1] + "ies")
    if base.endswith("ies"):
        forms.append(base[:-3] + "y")
    if base.endswith("es"):
        forms.append(base[:-2])
    if base.endswith("s"):
        forms.append(base[:-1])
    return list(dict.fromkeys(f for f in forms if f))


def find_word_span(prompt: str, word: str) -> tuple[int, int]:
    """Character span [start, end) of the first whole-word occurrence of `word` (case- and plural-tolerant)."""
    if not word.strip():
        raise ValueError(f"entity word must be non-empty; got {word!r} for prompt {prompt!r}")
    best: tuple[int, int] | None = None
    for form in word_forms(word):
        pattern = r"(?<![\w])" + r"\s+".join(map(re.escape, form.split())) + r"(?![\w])"
        match = re.search(pattern, prompt, flags=re.IGNORECASE)
        if match and (best is None or match.start() < best[0]):
            best = (match.start(), match.end())
    if best is None:
        raise EntityWordNotFoundError(word, prompt)
    return best


def token_span(offsets: list[tuple[int, int]], char_span: tuple[int, int]) -> tuple[int, int]:
    """Token indices [start, end) whose character offsets overlap `char_span` (sub-word tokens included)."""
    start, end = char_span
    hits = [i for i, (a, b) in enumerate(offsets) if b > a and a < end and b > start]
    if not hits:
        raise ValueError(
            f"no token covers characters {start}:{end}; the prompt was truncated by the tokenizer"
        )
    return hits[0], hits[-1] + 1


@dataclass
class EntityTokens:
    """One entity of one sample: its image tokens and its word's text tokens."""

    image_tokens: torch.Tensor  # [k * l, d_image]: all reference images of the entity
    word_tokens: torch.Tensor | None  # [m, d_text]; None for a background given without a word


class EntityBinder(nn.Module):
    """f_n = P x_n + W [x_n ; repeat(flatten(c_n))]."""

    def __init__(
        self, image_dim: int, text_dim: int, max_word_tokens: int, hidden_size: int, bind: bool
    ) -> None:
        super().__init__()
        self.bind = bind
        self.max_word_tokens = max_word_tokens
        self.image_proj = nn.Linear(image_dim, hidden_size)
        if bind:
            self.word_dim = max_word_tokens * text_dim
            self.binding_proj = nn.Linear(image_dim + self.word_dim, hidden_size)
            # A background reference without a word in the prompt binds to this learned stand-in.
            self.background_word = nn.Parameter(torch.randn(self.word_dim) * 0.02)

    def flatten_word(self, word_tokens: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        if word_tokens is None:
            return self.background_word.to(like.dtype)
        kept = word_tokens[: self.max_word_tokens]
        flat = kept.reshape(-1).to(like.dtype)
        return torch.nn.functional.pad(flat, (0, self.word_dim - flat.numel()))

    def bind_entity(self, entity: EntityTokens) -> torch.Tensor:
        x = entity.image_tokens  # [k*l, d_image]
        f = self.image_proj(x)
        if self.bind:
            c = self.flatten_word(entity.word_tokens, x).expand(
                x.shape[0], -1
            )  # repeated l times (per image)
            f = f + self.binding_proj(torch.cat([x, c], dim=-1))
        return f  # [k*l, hidden]

    def forward(self, entities: list[list[EntityTokens]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Concatenate each sample's bound entities; return (context [B, L, hidden], key mask [B, L])."""
        per_sample = [
            torch.cat([self.bind_entity(e) for e in sample], dim=0)
            if sample
            else self.image_proj.weight.new_zeros(0, self.image_proj.out_features)
            for sample in entities
        ]
        length = max(1, max(f.shape[0] for f in per_sample))
        context = self.image_proj.weight.new_zeros(len(per_sample), length, self.image_proj.out_features)
        mask = torch.zeros(len(per_sample), length, dtype=torch.bool, device=context.device)
        for i, f in enumerate(per_sample):
            context[i, : f.shape[0]] = f
            mask[i, : f.shape[0]] = True
        return context, mask
