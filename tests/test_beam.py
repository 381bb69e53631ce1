"""``greycloud.beam`` in real Beam pipelines on the DirectRunner, against the emulator.

Most tests run the pipeline in this process (fast); one runs four worker processes that share
the emulator's quota through a real redis-server for a little over a minute.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

beam = pytest.importorskip("apache_beam")

from apache_beam.metrics.metric import MetricsFilter  # noqa: E402
from apache_beam.ml.inference.base import KeyedModelHandler, PredictionResult, RunInference  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402
from google.oauth2.credentials import Credentials  # noqa: E402

from greycloud import ConfigError  # noqa: E402
from greycloud.beam import (  # noqa: E402
    Answer,
    Failure,
    GreyCloudEmbeddingHandler,
    GreyCloudModelHandler,
    SplitFailures,
)
from greycloud.testing import EmulatorProcess, Fault, RequestRecord, VertexEmulator  # noqa: E402
from tests.redis_fixture import RedisServer  # noqa: E402

IN_PROCESS = {"direct_num_workers": 1, "direct_running_mode": "in_memory"}


def prompt_text(body: dict[str, Any]) -> str:
    return "".join(part.get("text", "") for part in body["contents"][-1]["parts"])


def echo(body: dict[str, Any]) -> str:
    return f"echo: {prompt_text(body)}"


def record(result: Any) -> str:
    """One output element as a JSON line (the pipeline writes these to files)."""
    key = None
    if not isinstance(result, PredictionResult):
        key, result = result
    inference = result.inference
    line: dict[str, Any] = {
        "key": key,
        "example": result.example,
        "model_id": result.model_id,
        "pid": os.getpid(),
        "ok": inference.ok,
        "attempts": inference.attempts,
    }
    if isinstance(inference, Answer):
        line |= {"text": inference.text, "parsed": inference.parsed, "usage": inference.usage}
    elif isinstance(inference, Failure):
        line |= {"type": inference.type, "message": inference.message, "code": inference.code}
    return json.dumps(line, default=lambda value: getattr(value, "__dict__", repr(value)))


def run(
    elements: Iterable[Any],
    handler: Any,
    out: Path,
    options: dict[str, Any],
    inference_args: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run ``elements`` through RunInference + SplitFailures; the two outputs, read back."""
    pipeline = beam.Pipeline(options=PipelineOptions(flags=[], **options))
    answered, failed = (
        pipeline
        | beam.Create(list(elements))
        | RunInference(handler, inference_args=inference_args)
        | SplitFailures()
    )
    for name, output in (("answered", answered), ("failed", failed)):
        _ = (
            output
            | f"Format {name}" >> beam.Map(record)
            | f"Write {name}" >> beam.io.WriteToText(str(out / name))
        )
    result = pipeline.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_namespace("greycloud"))["counters"]
    (out / "counters.json").write_text(
        json.dumps({counter.key.metric.name: counter.committed for counter in counters})
    )
    return _read(out, "answered"), _read(out, "failed")


def counters(out: Path) -> dict[str, int]:
    """The handler's Beam counters of the last ``run`` into ``out``."""
    loaded: dict[str, int] = json.loads((out / "counters.json").read_text())
    return loaded


def _read(out: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _read_lines(out, name)]


def handler_for(emulator: VertexEmulator, **options: Any) -> GreyCloudModelHandler:
    config_fields = {
        key: options.pop(key)
        for key in ("rpm", "max_concurrency", "rate_limit_storage", "model")
        if key in options
    }
    return GreyCloudModelHandler(
        emulator.config(**config_fields),
        credentials=Credentials(token=emulator.token),
        base_delay=0.05,
        max_delay=0.5,
        **options,
    )


def test_every_element_answered_once_and_failures_on_the_dead_letter_output(
    vertex_emulator: VertexEmulator, tmp_path: Path
) -> None:
    emulator = vertex_emulator
    emulator.set_quota(rpm=1200)
    emulator.responder = echo

    def has(text: str) -> Callable[[RequestRecord], bool]:
        return lambda request: text in json.dumps(request.body)

    emulator.inject(Fault.status(400, "this prompt breaks a rule"), times=None, match=has("broken"))
    # Refused once: retried after the server's delay, then answered.
    emulator.inject(Fault.status(429, retry_delay=0.1), times=1, match=has("flaky"))
    prompts = [f"prompt {i}" for i in range(30)]
    lines = [
        {"id": "a", "prompt": "from a line", "temperature": 0.2, "metadata": {"row": 1}},
        {"id": "b", "contents": [{"role": "user", "parts": [{"text": "line contents"}]}]},
    ]
    contents = [[{"role": "user", "parts": [{"text": "a contents list"}]}]]
    invalid = {"id": "c", "prompt": "x", "temprature": 1}  # misspelt: never sent
    elements = [*prompts, *lines, *contents, "flaky one", "broken one", invalid]

    answered, failed = run(
        elements, handler_for(emulator, rpm=1200, max_batch_size=8), tmp_path, IN_PROCESS
    )

    valid = [*prompts, *lines, *contents, "flaky one"]
    assert sorted(json.dumps(r["example"]) for r in answered) == sorted(map(json.dumps, valid))
    texts = {json.dumps(r["example"]): r["text"] for r in answered}
    assert texts[json.dumps("prompt 7")] == "echo: prompt 7"  # each answer is its own element's
    assert texts[json.dumps(lines[0])] == "echo: from a line"
    assert texts[json.dumps(contents[0])] == "echo: a contents list"
    assert {r["example"]: r["attempts"] for r in answered if r["example"] == "flaky one"} == {
        "flaky one": 2
    }
    assert all(r["usage"]["total"] > 0 for r in answered)

    by_example = {json.dumps(r["example"]): r for r in failed}
    assert set(by_example) == {json.dumps("broken one"), json.dumps(invalid)}
    broken = by_example[json.dumps("broken one")]
    assert broken["code"] == 400
    assert "this prompt breaks a rule" in broken["message"]
    assert broken["attempts"] == 1  # a 400 is not retried
    rejected = by_example[json.dumps(invalid)]
    assert rejected["type"] == "InvalidPrompt"
    assert "temprature" in rejected["message"]
    assert rejected["attempts"] == 0

    # Each valid element was sent once (plus the flaky one's retry), the invalid one never.
    generate_calls = [r for r in emulator.requests() if r.model == "gemini-2.5-flash"]
    assert len(generate_calls) == len(valid) + 1 + 1  # + the retry + the broken one
    assert emulator.stats().rejected == 1  # the injected one
    assert counters(tmp_path) == {
        "answered": len(valid),
        "failed": 2,
        "retries": 1,
        "rate_limited": 1,
    }
    line_request = next(r for r in generate_calls if "from a line" in json.dumps(r.body))
    assert line_request.body["generationConfig"]["temperature"] == 0.2


def test_keyed_elements_and_inference_args_reach_the_request(
    vertex_emulator: VertexEmulator, tmp_path: Path
) -> None:
    vertex_emulator.responder = lambda body: json.dumps({"answer": prompt_text(body)})
    handler = KeyedModelHandler(handler_for(vertex_emulator, response_mime_type="application/json"))
    schema = {"type": "OBJECT", "properties": {"answer": {"type": "STRING"}}}
    answered, failed = run(
        [("k1", "one"), ("k2", "two")],
        handler,
        tmp_path,
        IN_PROCESS,
        inference_args={"response_schema": schema, "max_output_tokens": 64},
    )
    assert failed == []
    assert {r["key"]: r["parsed"] for r in answered} == {
        "k1": {"answer": "one"},
        "k2": {"answer": "two"},
    }
    sent = [r.body["generationConfig"] for r in vertex_emulator.requests()]
    assert all(c["responseMimeType"] == "application/json" for c in sent)
    assert all(c["maxOutputTokens"] == 64 for c in sent)


def test_a_bad_setting_fails_when_the_pipeline_is_built(vertex_emulator: VertexEmulator) -> None:
    with pytest.raises(ConfigError, match="temperature"):
        handler_for(vertex_emulator, temperature="hot")
    pipeline = beam.Pipeline(options=PipelineOptions(flags=[], **IN_PROCESS))
    with pytest.raises(ConfigError, match="inference_args"):
        _ = (
            pipeline
            | beam.Create(["never sent"])
            | RunInference(handler_for(vertex_emulator), inference_args={"no_such_setting": 1})
        )


def test_failure_keeps_the_server_message_of_the_last_attempt(
    vertex_emulator: VertexEmulator, tmp_path: Path
) -> None:
    vertex_emulator.inject(Fault.status(503, "the backend is resting"), times=None)
    answered, failed = run(
        ["will fail"], handler_for(vertex_emulator, max_retries=2), tmp_path, IN_PROCESS
    )
    assert answered == []
    [only] = failed
    assert only["type"] == "RetryExhaustedError"
    assert only["code"] == 503
    assert "the backend is resting" in only["message"]
    assert only["attempts"] == 3


def test_rejected_credentials_fail_the_batch_for_beams_own_dead_letter_output(
    vertex_emulator: VertexEmulator, tmp_path: Path
) -> None:
    """No element could succeed, so the batch fails (as a broken model does), not each one."""
    handler = GreyCloudModelHandler(
        vertex_emulator.config(), credentials=Credentials(token="not-a-token-it-minted")
    )
    pipeline = beam.Pipeline(options=PipelineOptions(flags=[], **IN_PROCESS))
    answered, dead = (
        pipeline | beam.Create(["one", "two"]) | RunInference(handler).with_exception_handling()
    )
    _ = (
        answered
        | "Answered" >> beam.Map(repr)
        | "WriteAnswered" >> beam.io.WriteToText(str(tmp_path / "answered"))
    )
    _ = (
        dead.failed_inferences
        | "Failed"
        >> beam.Map(lambda batch_error: json.dumps([batch_error[0], repr(batch_error[1])]))
        | "WriteFailed" >> beam.io.WriteToText(str(tmp_path / "failed"))
    )
    pipeline.run().wait_until_finish()
    assert _read_lines(tmp_path, "answered") == []
    failed = [json.loads(line) for line in _read_lines(tmp_path, "failed")]
    assert sorted(element for batch, _ in failed for element in batch) == ["one", "two"]
    assert all("AuthError" in error for _, error in failed)


def _read_lines(out: Path, name: str) -> list[str]:
    return [line for shard in out.glob(f"{name}*") for line in shard.read_text().splitlines()]


def test_four_worker_processes_share_one_quota_through_redis(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """The busy minute: the emulator refuses nothing and admits >= 90% of its quota."""
    rpm = 300
    model = f"gemini-beam-{uuid.uuid4().hex[:8]}"  # a limiter key no other test used
    # The server in a process of its own, as a real one is: requests are stamped on arrival.
    with EmulatorProcess(rpm=rpm, latency=0.05) as emulator:
        handler = GreyCloudModelHandler(
            emulator.config(
                model=model,
                rpm=rpm,
                max_concurrency=16,
                rate_limit_storage=redis_server.url,
            ),
            credentials=Credentials(token="any"),
            max_batch_size=50,
        )
        elements = [f"row {i}" for i in range(rpm + rpm // 10)]
        answered, failed = run(
            elements,
            handler,
            tmp_path,
            {"direct_num_workers": 4, "direct_running_mode": "multi_processing"},
        )
        stats = emulator.stats()[model]
    assert failed == []
    assert sorted(r["example"] for r in answered) == sorted(elements)
    assert len({r["pid"] for r in answered}) > 1  # answered by more than one worker process
    assert (stats.rejected, stats.accepted) == (0, len(elements)), stats
    assert stats.peak_rpm >= 0.9 * rpm


def test_embeddings_one_call_per_batch_and_only_the_refused_element_fails(
    vertex_emulator: VertexEmulator, tmp_path: Path
) -> None:
    vertex_emulator.inject(
        Fault.status(400, "this text cannot be embedded"),
        times=None,
        match=lambda request: "poison" in json.dumps(request.body),
    )
    texts = [f"text {i}" for i in range(6)]
    handler = GreyCloudEmbeddingHandler(
        vertex_emulator.config(),
        credentials=Credentials(token=vertex_emulator.token),
        output_dimensionality=8,
        max_batch_size=10,
        min_batch_size=10,
    )
    pipeline = beam.Pipeline(options=PipelineOptions(flags=[], **IN_PROCESS))
    embedded, failed = (
        pipeline
        | beam.Create([*texts, "poison pill", ""])
        | RunInference(handler)
        | SplitFailures()
    )
    for name, output in (("embedded", embedded), ("failed", failed)):
        _ = (
            output
            | f"Format {name}" >> beam.Map(lambda r: json.dumps([r.example, r.inference.__dict__]))
            | f"Write {name}" >> beam.io.WriteToText(str(tmp_path / name))
        )
    pipeline.run().wait_until_finish()
    vectors = dict(json.loads(line) for line in _read_lines(tmp_path, "embedded"))
    assert sorted(vectors) == sorted(texts)
    assert {len(v["values"]) for v in vectors.values()} == {8}
    assert len({tuple(v["values"]) for v in vectors.values()}) == len(texts)  # one each
    refused = dict(json.loads(line) for line in _read_lines(tmp_path, "failed"))
    assert refused["poison pill"]["code"] == 400
    assert "this text cannot be embedded" in refused["poison pill"]["message"]
    assert refused[""]["type"] == "InvalidPrompt"
    # The batch went as one call, refused for the poison; then each element alone.
    calls = [r for r in vertex_emulator.requests() if r.model is not None]
    assert len(calls) == 1 + len(texts) + 1


def test_an_embedding_batch_the_service_kept_refusing_is_not_sent_again_element_by_element(
    vertex_emulator: VertexEmulator, tmp_path: Path
) -> None:
    """Retries used up on a 503: the service is failing, so every element fails with it, and
    no one-by-one requests pile onto it (that is for a batch one bad element failed)."""
    vertex_emulator.inject(Fault.status(503), times=None)
    handler = GreyCloudEmbeddingHandler(
        vertex_emulator.config(),
        credentials=Credentials(token=vertex_emulator.token),
        max_retries=0,
        max_batch_size=10,
        min_batch_size=10,
    )
    pipeline = beam.Pipeline(options=PipelineOptions(flags=[], **IN_PROCESS))
    _, failed = (
        pipeline | beam.Create([f"text {i}" for i in range(4)]) | RunInference(handler)
    ) | SplitFailures()
    _ = failed | beam.Map(lambda r: r.inference.code) | beam.io.WriteToText(str(tmp_path / "f"))
    pipeline.run().wait_until_finish()
    assert sorted(_read_lines(tmp_path, "f")) == ["503"] * 4
    assert len([r for r in vertex_emulator.requests() if r.model is not None]) == 1
