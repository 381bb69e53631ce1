"""Pieces of the emulator without a server: quota windows, answers, routes; and the CLI."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request

import pytest

from greycloud.testing import EmulatorProcess
from greycloud.testing._answers import estimate_tokens, make_answer, split_text
from greycloud.testing._quota import Limits, QuotaBook, RollingWindow
from greycloud.testing._rpc import format_duration, retry_after_header
from greycloud.testing._server import parse_route


def test_window_refuses_and_names_the_delay() -> None:
    window = RollingWindow()
    limits = Limits(rpm=3, tpm=None)
    for second in (0.0, 1.0, 2.0):
        assert window.try_admit(second, 10, limits) is None
    refusal = window.try_admit(30.0, 10, limits)
    assert refusal is not None and refusal.retry_delay == pytest.approx(30.0)
    assert window.try_admit(60.0, 10, limits) is None  # the t=0 request left
    assert (window.peak_requests, window.peak_tokens) == (3, 30)


def test_window_token_delay_waits_for_enough_tokens() -> None:
    window = RollingWindow()
    limits = Limits(rpm=None, tpm=100)
    window.try_admit(0.0, 30, limits)
    window.try_admit(10.0, 30, limits)
    window.try_admit(20.0, 30, limits)
    refusal = window.try_admit(30.0, 50, limits)  # needs the first two to leave
    assert refusal is not None and refusal.retry_delay == pytest.approx(40.0)
    too_big = window.try_admit(30.0, 500, limits)
    assert too_big is not None and too_big.retry_delay == 60.0


def test_quota_book_overrides_stay_partial() -> None:
    book = QuotaBook(rpm=10, tpm=None, model_quotas={"pro": {"rpm": 2}})
    book.set(tpm=1000)
    assert book.limits_for("pro") == Limits(2, 1000)
    assert book.limits_for("flash") == Limits(10, 1000)
    with pytest.raises(ValueError, match="unknown quota"):
        book.set(rpd=5)


def test_durations_and_retry_after() -> None:
    assert format_duration(12.5) == "12.5s" and format_duration(47) == "47s"
    assert retry_after_header(12.5) == "13" and retry_after_header(12.0) == "12"
    assert retry_after_header(0.01) == "1"


def test_answers_split_back_together() -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "abc"}]}]}
    answer = make_answer("m", body, prompt=1, cached=0, scripted=None)
    (text,) = answer.texts
    assert "".join(split_text(text)) == text and len(split_text(text)) >= 3
    assert answer.candidates_tokens == estimate_tokens(len(text))
    assert make_answer("m", body, prompt=1, cached=0, scripted=None) == answer


@pytest.mark.parametrize(
    ("path", "kind", "model"),
    [
        ("/v1/projects/p/locations/l/publishers/google/models/m:generateContent", "model", "m"),
        ("/v1beta1/projects/p/locations/l/publishers/google/models/m:countTokens", "model", "m"),
        ("/v1/projects/p/locations/l/endpoints/123:generateContent", "model", "endpoints/123"),
        ("/v1/publishers/google/models/m:streamGenerateContent", "model", "m"),
        ("/v1beta/models/m:generateContent", "model", "m"),
        ("/v1/projects/p/locations/l/cachedContents/7", "cache", None),
        ("/v1/projects/p/locations/l/batchPredictionJobs/12:cancel", "batch_cancel", None),
    ],
)
def test_parse_route(path: str, kind: str, model: str | None) -> None:
    route = parse_route(path)
    assert route is not None and (route.kind, route.model) == (kind, model)


@pytest.mark.parametrize(
    ("path", "method", "vertex"),
    [
        ("/v1/projects/p/locations/l/publishers/google/models/m:predict", "predict", True),
        (
            "/v1/projects/p/locations/l/publishers/google/models/m:embedContent",
            "embedContent",
            True,
        ),
        ("/v1/publishers/google/models/m:batchEmbedContents", "batchEmbedContents", True),
        ("/v1beta/models/m:batchEmbedContents", "batchEmbedContents", False),
    ],
)
def test_parse_embedding_routes(path: str, method: str, vertex: bool) -> None:
    route = parse_route(path)
    assert route is not None and (route.method, route.vertex, route.model) == (method, vertex, "m")


@pytest.mark.parametrize(
    "path",
    [
        "/v2/projects/p/locations/l/publishers/google/models/m:generateContent",
        "/v1/projects/p/locations/l/publishers/google/models/m:predictLongRunning",
        "/v1/projects/p/locations/l/batchPredictionJobs/abc",
        "/v1beta/batchPredictionJobs",
        "/",
    ],
)
def test_parse_route_rejects(path: str) -> None:
    assert parse_route(path) is None


def test_python_m_serves_until_stopped() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "greycloud.testing", "--port", "0", "--rpm", "5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "listening on http://127.0.0.1:" in first and "rpm=5" in first
        base_url = first.split("listening on ")[1].split()[0]
        request = urllib.request.Request(
            f"{base_url}/v1/projects/p/locations/l/publishers/google/models/m:countTokens",
            data=b'{"contents": [{"role": "user", "parts": [{"text": "abcd"}]}]}',
            headers={"Authorization": "Bearer any-token", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request) as response:
            assert response.status == 200
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_an_emulator_process_raises_what_failed_in_it_instead_of_hanging() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(RuntimeError, match="could not listen"):
            EmulatorProcess(port=taken.getsockname()[1])
    with EmulatorProcess() as server:
        with pytest.raises(TypeError):
            server.set_quota(per_fortnight=5)
        assert server.stats().accepted == 0  # and it still answers
        assert server.config().search_endpoint == server.base_url
