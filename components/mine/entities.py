"""Entity words of a caption, each labelled subject / object / background, with its character span.

Every backend's answer goes through `validate_entities`, so a word that is not literally in the caption or a
kind outside the allowed set never reaches the manifest, whichever backend produced it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from components.mine.lexicon import ATTRIBUTES, kind_of

KINDS = ("subject", "object", "background")
_TOKEN = re.compile(r"[A-Za-z][A-Za-z'-]*")


class EntityExtractionError(ValueError):
    """A caption yielded no valid entity words (or a backend's answer failed validation)."""


@dataclass(frozen=True)
class EntityWord:
    """`caption[start:end] == word`; kind in KINDS."""

    word: str
    kind: str
    start: int
    end: int


class EntityExtractor(Protocol):
    """Turns a caption into its entity words; raises EntityExtractionError when there are none."""

    name: str

    def extract(self, caption: str) -> list[EntityWord]: ...


class RuleExtractor:
    """Offline default: nouns from a lexicon, skipping clothing/body parts and the first noun of a compound.

    "a man in a gray shirt juggles a soccer ball on the grass" gives man (subject), ball (object),
    grass (background); "brick wall" gives only "wall".
    """

    name = "rules"

    def extract(self, caption: str) -> list[EntityWord]:
        tokens = list(_TOKEN.finditer(caption))
        found: list[EntityWord] = []
        seen: set[str] = set()
        for i, token in enumerate(tokens):
            word = token.group().lower()
            kind = kind_of(word)
            if kind is None or word in ATTRIBUTES or word in seen:
                continue
            following = tokens[i + 1] if i + 1 < len(tokens) else None
            adjacent = following is not None and caption[token.end() : following.start()] == " "
            if (
                adjacent
                and kind_of(following.group().lower())
                and following.group().lower() not in ATTRIBUTES
            ):
                continue
            seen.add(word)
            found.append(EntityWord(token.group(), kind, token.start(), token.end()))
        if not found:
            raise EntityExtractionError(f"no entity words found in caption {caption!r}")
        return found


def validate_entities(caption: str, items: Any) -> list[EntityWord]:
    """Check a backend's raw answer `[{"word": str, "kind": str}, ...]` against the caption.

    Each word must occur in the caption as a whole word (its first occurrence gives the span), kinds must be
    allowed, duplicates are dropped. Raises EntityExtractionError saying what was wrong.
    """
    if isinstance(items, dict) and "entities" in items:
        items = items["entities"]
    if not isinstance(items, list) or not items:
        raise EntityExtractionError(f"expected a non-empty list of entities, got {str(items)[:200]!r}")
    result: list[EntityWord] = []
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("word"), str):
            raise EntityExtractionError(f"entity {str(item)[:100]!r} is not an object with a string 'word'")
        word, kind = item["word"].strip(), item.get("kind")
        if kind not in KINDS:
            raise EntityExtractionError(f"entity {word!r} has kind {kind!r}; expected one of {KINDS}")
        match = re.search(rf"(?<![A-Za-z]){re.escape(word)}(?![A-Za-z])", caption, flags=re.IGNORECASE)
        if not word or match is None:
            raise EntityExtractionError(f"entity word {word!r} does not occur in caption {caption!r}")
        if word.lower() in seen:
            continue
        seen.add(word.lower())
        result.append(EntityWord(match.group(), kind, match.start(), match.end()))
    return result
