"""The benchmark LLM: the OpenAI stand-in answering at a model's pace, through the official
`openai` SDK's streaming path (OpenAI itself cannot be reached from here), in this process and
as its own process."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import openai
import pytest

from tests.standins.openai_server import OpenAIStandIn, Pacing

GROUNDED = [
    {"role": "system", "content": "Answer from these passages.\n[1] Returns are accepted within 30 days."},
    {"role": "user", "content": "can i return my order"},
]


def _stream(base_url: str, api_key: str) -> tuple[float, float, list[str]]:
    """(seconds to the first content, seconds to the end, the content pieces)."""
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
    started = time.monotonic()
    first = 0.0
    pieces: list[str] = []
    for chunk in client.chat.completions.create(model="gpt-4o-mini", messages=GROUNDED, stream=True):  # type: ignore[arg-type]
        if chunk.choices and chunk.choices[0].delta.content:
            first = first or time.monotonic() - started
            pieces.append(chunk.choices[0].delta.content)
    return first, time.monotonic() - started, pieces


def test_answers_at_the_pace_of_a_model_and_cite_when_grounded() -> None:
    server = OpenAIStandIn(pacing=Pacing(first_token=0.3, tokens_per_second=100, answer_tokens=30)).start()
    try:
        first, total, pieces = _stream(server.base_url, server.api_key)
    finally:
        server.stop()
    assert len(pieces) == 30 and " [1]." in "".join(pieces[:14])  # cited early, as a model does
    assert first >= 0.3 and total >= 0.3 + 29 / 100
    assert server.requests == []  # a benchmark's requests are not kept


def test_runs_as_its_own_process_until_terminated() -> None:
    args = ["--first-token-ms", "50", "--tokens-per-second", "500", "--answer-tokens", "12", "--api-key", "sk-b"]
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.standins.openai_server", *args], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        _first, _total, pieces = _stream(base_url, "sk-b")
        assert len(pieces) == 12
    finally:
        process.terminate()
    assert process.wait(timeout=10) == 0


def test_a_hang_holds_requests_unanswered_until_it_ends_then_answers_again() -> None:
    """The fault benchmark's hung model: the SDK's read timeout fires (nothing was answered);
    after the hang, requests are answered at the usual pace."""
    server = OpenAIStandIn(pacing=Pacing(first_token=0.05, tokens_per_second=500, answer_tokens=10)).start()
    try:
        hang = httpx.post(
            f"{server.base_url}/standin/hang", json={"seconds": 1.5}, headers={"Authorization": "Bearer sk-standin"}
        )
        assert hang.status_code == 200
        client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(model="gpt-4o-mini", messages=GROUNDED, stream=True)  # type: ignore[arg-type]
        assert 0.5 <= time.monotonic() - started < 1.4
        assert server.hung == 1
        time.sleep(1.2)  # the hang is over
        _first, _total, pieces = _stream(server.base_url, server.api_key)
        assert len(pieces) == 10
        refused = httpx.post(
            f"{server.base_url}/standin/hang", json={"seconds": "long"}, headers={"Authorization": "Bearer sk-standin"}
        )
        assert refused.status_code == 400
    finally:
        server.stop()
