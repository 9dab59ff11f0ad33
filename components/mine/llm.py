"""LLM entity-word backend: ask a chat model for strict JSON, validate it against the caption, retry.

Two transports answer the same prompt: a local transformers causal LM loaded from a folder, and an
OpenAI-compatible chat-completions endpoint (vLLM, TGI, OpenAI) over plain HTTP.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from components.mine.entities import KINDS, EntityExtractionError, EntityWord, validate_entities

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "entities": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"word": {"type": "string"}, "kind": {"type": "string", "enum": list(KINDS)}},
                "required": ["word", "kind"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["entities"],
    "additionalProperties": False,
}

SYSTEM = (
    "You extract the entities a video caption names. Return only JSON matching this schema: "
    + json.dumps(SCHEMA)
    + ". Each word must be copied exactly from the caption (one noun, the head of its phrase). kind is "
    "'subject' for people and animals, 'object' for things, 'background' for the scene or surface. Skip "
    "clothing and body parts."
)
EXAMPLE = (
    "a woman in a red coat walks a dog along the beach",
    {"entities": [{"word": "woman", "kind": "subject"}, {"word": "dog", "kind": "subject"},
                  {"word": "beach", "kind": "background"}]},
)  # fmt: skip


class Chat(Protocol):
    """One chat completion: system + user message in, assistant text out."""

    def complete(self, system: str, user: str) -> str: ...


def parse_json(text: str) -> Any:
    """The first JSON object in a model's answer (models often wrap it in prose or code fences)."""
    start = text.find("{")
    while start != -1:
        try:
            value, _ = json.JSONDecoder().raw_decode(text[start:])
            return value
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
    raise EntityExtractionError(f"answer has no JSON object: {text[:200]!r}")


@dataclass
class LLMExtractor:
    """Entity words from an LLM; each answer must parse and validate, else retry up to `attempts` times."""

    chat: Chat
    attempts: int = 3
    name: str = field(default="llm", init=False)

    def extract(self, caption: str) -> list[EntityWord]:
        example_caption, example_answer = EXAMPLE
        user = f"Caption: {example_caption}\nJSON: {json.dumps(example_answer)}\nCaption: {caption}\nJSON:"
        errors = []
        for _ in range(self.attempts):
            try:
                return validate_entities(caption, parse_json(self.chat.complete(SYSTEM, user)))
            except EntityExtractionError as error:
                errors.append(str(error))
        raise EntityExtractionError(f"LLM answer invalid after {self.attempts} attempts: {errors[-1]}")


@dataclass
class HttpChat:
    """OpenAI-compatible `POST {base_url}/chat/completions` with a JSON-schema response format."""

    base_url: str
    model: str = "default"
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = 60.0
    max_tokens: int = 256

    def complete(self, system: str, user: str) -> str:
        body = {
            "model": self.model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "temperature": 0,
            "max_tokens": self.max_tokens,
            "response_format": {"type": "json_schema", "json_schema": {"name": "entities", "schema": SCHEMA}},
        }
        headers = {"Content-Type": "application/json"}
        if os.environ.get(self.api_key_env):
            headers["Authorization"] = f"Bearer {os.environ[self.api_key_env]}"
        url = self.base_url.rstrip("/") + "/chat/completions"
        request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = json.loads(response.read())
            return str(payload["choices"][0]["message"]["content"])
        except (urllib.error.URLError, TimeoutError, KeyError, IndexError, json.JSONDecodeError) as error:
            raise EntityExtractionError(f"LLM endpoint {url} failed: {error}") from error


class TransformersChat:
    """A local causal LM (any `AutoModelForCausalLM` folder); greedy decoding, chat template when present."""

    def __init__(self, model_dir: Path, max_new_tokens: int = 128) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not Path(model_dir).is_dir():
            raise FileNotFoundError(f"LLM folder {model_dir} does not exist")
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        self.max_new_tokens = max_new_tokens

    def complete(self, system: str, user: str) -> str:
        import torch

        if getattr(self.tokenizer, "chat_template", None):
            messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
            prompt = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            prompt = f"{system}\n{user}"
        encoded = self.tokenizer(prompt, return_tensors="pt")
        inputs = {k: encoded[k] for k in ("input_ids", "attention_mask") if k in encoded}
        pad = (
            self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None
            else self.tokenizer.eos_token_id
        )
        with torch.no_grad():
            output = self.model.generate(
                **inputs, max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=pad
            )
        text = self.tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        return re.sub(r"^```(?:json)?|```$", "", text.strip())
