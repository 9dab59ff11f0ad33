"""Prompt normalisation of CLIP's own tokenizer (OpenAI `clip/simple_tokenizer.py`), which the reference
evaluation tokenizes with: `ftfy.fix_text`, HTML unescaping twice, whitespace collapsed, lower case.

transformers' CLIP tokenizers skip ftfy and HTML unescaping, so without this step Text-S changes for
prompts with curly quotes, HTML entities or mojibake.
"""

from __future__ import annotations

import html
import re

_WHITESPACE = re.compile(r"\s+")


def clip_normalize(text: str) -> str:
    """`whitespace_clean(basic_clean(text)).lower()` of CLIP's `SimpleTokenizer.encode`."""
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return _WHITESPACE.sub(" ", text).strip().lower()
