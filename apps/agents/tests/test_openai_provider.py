"""The OpenAI LLM provider through the official `openai` SDK against the local stand-in in
`tests/standins/openai_server.py`, which stands in for OpenAI's Chat Completions API
(`POST /v1/chat/completions`: bearer auth, streamed server-sent events with content and
tool-call fragments and a final usage chunk, OpenAI's error envelope and retry headers), so
the SDK's real request path runs: URL building, headers, JSON, SSE decoding, retries, timeouts.
Also the tiktoken counts of apps.agents.tokens, from encodings shipped by a PyPI package.

No database: providers never touch it. Timeouts and retry delays are set tiny to stay fast.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any

import pytest

from apps.agents import tokens
from apps.agents.providers import (
    ChatRequest,
    Finish,
    ProviderCredentials,
    ProviderError,
    ProviderEvent,
    TextDelta,
    ToolCall,
    ToolSpec,
    Usage,
    get_provider,
)
from apps.agents.providers.openai import LOCAL_SERVER_KEY, UNREACHABLE, server_sent_data
from tests.netlocal import elapsed, local_site, scripted_dns
from tests.standins.openai_server import CHAT_PATH, OpenAIStandIn, count_standin_tokens

KEY = "sk-test-chat-0123456789abcdef"
SYSTEM = "You answer from the reference material and cite it.\n\n[1] Orders ship within 2 business days."


@pytest.fixture(scope="module")
def standin() -> Iterator[OpenAIStandIn]:
    server = OpenAIStandIn(api_key=KEY).start()
    yield server
    server.stop()


@pytest.fixture
def openai(settings: Any, standin: OpenAIStandIn) -> OpenAIStandIn:
    standin.reset()
    settings.OPENAI_API_KEY = KEY
    settings.OPENAI_BASE_URL = standin.base_url
    settings.OPENAI_TIMEOUT = 2
    settings.OPENAI_MAX_RETRIES = 2
    return standin


def chat(text: str = "When will my order ship?", **overrides: Any) -> ChatRequest:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]
    return ChatRequest(**{"messages": messages, "model": "gpt-4o-mini", "max_tokens": 200, **overrides})


def run(request: ChatRequest, credentials: ProviderCredentials | None = None) -> list[ProviderEvent]:
    return list(get_provider("openai", credentials).stream(request))


def text_of(events: list[ProviderEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def test_streamed_text_arrives_as_ordered_deltas_then_usage_and_finish(openai: OpenAIStandIn) -> None:
    answer = "Orders ship within 2 business days, tracked by email [1]."
    openai.reply(answer)
    events = run(chat(temperature=0.3))
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) >= 5 and "".join(d.text for d in deltas) == answer
    assert [d.text for d in deltas][:3] == ["Orders", " ship", " within"]
    assert events[len(deltas) :] == [events[-2], Finish("stop")] and isinstance(events[-2], Usage)

    sent = openai.chat_requests
    assert len(sent) == 1
    assert sent[0]["model"] == "gpt-4o-mini"
    assert sent[0]["messages"] == chat().messages
    assert (sent[0]["temperature"], sent[0]["max_tokens"]) == (0.3, 200)
    assert sent[0]["stream"] is True and sent[0]["stream_options"] == {"include_usage": True}
    assert "tools" not in sent[0] and "tool_choice" not in sent[0]
    assert openai.requests_to(CHAT_PATH)[0].headers["authorization"] == f"Bearer {KEY}"


def test_default_reply_is_an_echo_citing_reference_material(openai: OpenAIStandIn) -> None:
    assert text_of(run(chat("hello there"))) == "Echo: hello there [1]"
    plain = chat("hello there", messages=[{"role": "user", "content": "hello there"}])
    assert text_of(run(plain)) == "Echo: hello there"


def test_tool_calls_split_across_chunks_reassemble_with_valid_json(openai: OpenAIStandIn) -> None:
    lookup = ToolSpec(
        name="lookup_order",
        description="Find an order by its number.",
        parameters={"type": "object", "properties": {"number": {"type": "string"}}, "required": ["number"]},
    )
    handoff = ToolSpec(name="handoff", description="Hand the chat to a human.", parameters={"type": "object"})
    first = {"number": "A-10492", "note": "customer asked twice about the delivery window"}
    second = {"reason": "wants a refund over the limit", "priority": "high"}
    openai.reply("Let me check.", tool_calls=[("lookup_order", first), ("handoff", second)])
    events = run(chat(tools=[lookup, handoff]))

    calls = [e for e in events if isinstance(e, ToolCall)]
    assert [c.name for c in calls] == ["lookup_order", "handoff"]
    assert [json.loads(c.arguments) for c in calls] == [first, second]
    assert len({c.id for c in calls}) == 2 and all(c.id.startswith("call_") for c in calls)
    assert text_of(events) == "Let me check."
    kinds = [type(e).__name__ for e in events]
    assert kinds[-4:] == ["ToolCall", "ToolCall", "Usage", "Finish"] and events[-1] == Finish("tool_calls")

    body = openai.chat_requests[0]
    assert body["tool_choice"] == "auto"
    assert body["tools"] == [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in (lookup, handoff)
    ]
    # the fragments really were split: the arguments came in many deltas
    assert len(json.dumps(first)) > 3 * 7


def test_usage_comes_from_the_server_or_is_counted_with_tiktoken(openai: OpenAIStandIn) -> None:
    request = chat()
    openai.reply("Two business days [1].")
    usage = next(e for e in run(request) if isinstance(e, Usage))
    prompt = sum(3 + count_standin_tokens(m["content"]) for m in request.messages) + 3
    assert usage == Usage(prompt_tokens=prompt, completion_tokens=4)  # the stand-in's own counts

    openai.reply("Two business days [1].", usage=False)  # a compatible server that ignores stream_options
    usage = next(e for e in run(request) if isinstance(e, Usage))
    assert usage == Usage(
        prompt_tokens=tokens.count_message_tokens(request.messages, "gpt-4o-mini"),
        completion_tokens=tokens.count_tokens("Two business days [1].", "gpt-4o-mini"),
    )
    assert usage.completion_tokens == 6  # o200k_base: "Two", " business", " days", " [", "1", "]."


def test_rate_limit_then_success_is_retried_honouring_retry_after(openai: OpenAIStandIn) -> None:
    openai.rate_limit(path=CHAT_PATH, retry_after_ms=10)
    openai.reply("Back again.")
    events = run(chat())
    assert text_of(events) == "Back again." and events[-1] == Finish("stop")
    attempts = openai.requests_to(CHAT_PATH)
    assert len(attempts) == 2
    assert [a.headers.get("x-stainless-retry-count") for a in attempts] == ["0", "1"]


def test_persistent_server_errors_end_in_a_retryable_error_after_bounded_attempts(
    openai: OpenAIStandIn, settings: Any
) -> None:
    openai.fail(500, times=10, retry_after_ms=5)
    with pytest.raises(ProviderError) as error:
        run(chat())
    assert error.value.retryable is True and str(error.value) == UNREACHABLE.format(attempts=3)
    assert len(openai.chat_requests) == settings.OPENAI_MAX_RETRIES + 1 == 3

    openai.reset()
    openai.fail(503, times=2)  # no retry-after: the SDK's own exponential backoff (~0.4 s, then done)
    settings.OPENAI_MAX_RETRIES = 1
    started = time.monotonic()
    with pytest.raises(ProviderError) as error:
        run(chat())
    assert error.value.retryable is True and 0.3 < time.monotonic() - started < 3
    assert len(openai.chat_requests) == 2


def test_a_server_slower_than_the_timeout_ends_in_a_retryable_error_in_bounded_time(
    openai: OpenAIStandIn, settings: Any
) -> None:
    settings.OPENAI_TIMEOUT = 0.3
    settings.OPENAI_MAX_RETRIES = 1
    openai.reply("too late", delay=3.0, times=2)
    started = time.monotonic()
    with pytest.raises(ProviderError) as error:
        run(chat())
    elapsed = time.monotonic() - started
    assert error.value.retryable is True and str(error.value) == UNREACHABLE.format(attempts=2)
    assert elapsed < 2.0  # two 0.3 s attempts and one backoff, not the server's 3 s
    assert len(openai.chat_requests) == 2


def test_a_refused_key_is_not_retryable_and_never_echoed(openai: OpenAIStandIn, settings: Any) -> None:
    settings.OUTBOUND_ALLOWLIST = ["127.0.0.1/32"]  # the tenant's endpoint: a self-hosted server here
    wrong = "sk-proj-WRONGwrongWRONG98765"
    for credentials in (ProviderCredentials(api_key=wrong, base_url=openai.base_url), None):
        if credentials is None:
            settings.OPENAI_API_KEY = wrong  # the platform key, same answer
        openai.reset()
        with pytest.raises(ProviderError) as error:
            run(chat(), credentials)
        message = str(error.value)
        assert error.value.retryable is False and "API key was refused" in message
        assert wrong not in message and wrong[-4:] not in message and error.value.__cause__ is None
        assert len(openai.chat_requests) == 1  # not retried

    settings.OPENAI_API_KEY = ""
    settings.OPENAI_BASE_URL = ""
    with pytest.raises(ProviderError, match="No OpenAI API key") as error:
        run(chat())
    assert error.value.retryable is False


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"model": "gpt-9-imaginary"}, "Model 'gpt-9-imaginary' was not found"),
        ({"temperature": 3.5}, "OpenAI rejected the request."),
    ],
)
def test_bad_requests_are_not_retryable_and_say_why(
    openai: OpenAIStandIn, overrides: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ProviderError) as error:
        run(chat(**overrides))
    assert error.value.retryable is False and expected in str(error.value)
    assert len(openai.chat_requests) == 1


def test_quota_exhaustion_is_not_retryable(openai: OpenAIStandIn) -> None:
    quota = {"message": "You exceeded your current quota.", "code": "insufficient_quota", "type_": "insufficient_quota"}
    openai.fail(429, times=3, retry_after_ms=5, **quota)
    with pytest.raises(ProviderError, match="run out of quota") as error:
        run(chat())
    assert error.value.retryable is False  # the SDK retried it like any 429; the provider knows better


def test_base_url_and_credentials_are_honoured(openai: OpenAIStandIn, settings: Any) -> None:
    settings.OUTBOUND_ALLOWLIST = ["127.0.0.1/32"]  # the operator admits self-hosted model servers
    local = OpenAIStandIn(api_key=LOCAL_SERVER_KEY, chat_models={"llama3.1:8b"}).start()
    tenant = OpenAIStandIn(api_key="tenant-key").start()
    try:
        # a local OpenAI-compatible server without a key
        events = run(chat("hi", model="llama3.1:8b"), ProviderCredentials(base_url=local.base_url + "/"))
        assert text_of(events) == "Echo: hi [1]"
        assert local.requests_to(CHAT_PATH)[0].headers["authorization"] == f"Bearer {LOCAL_SERVER_KEY}"
        # a tenant's own key and endpoint: nothing reaches the platform's
        run(chat("hi"), ProviderCredentials(api_key="tenant-key", base_url=tenant.base_url, organization="org-acme"))
        assert tenant.requests_to(CHAT_PATH)[0].headers["openai-organization"] == "org-acme"
        assert openai.chat_requests == []
        # no credentials: the platform's settings, and the platform's default model
        run(chat("hi", model=""))
        assert openai.chat_requests[0]["model"] == settings.OPENAI_CHAT_MODEL == "gpt-4o-mini"
    finally:
        local.stop()
        tenant.stop()


def test_reasoning_models_get_max_completion_tokens_and_no_temperature(openai: OpenAIStandIn) -> None:
    events = run(chat(model="o4-mini", max_tokens=300))
    assert events[-1] == Finish("stop")
    body = openai.chat_requests[0]
    assert body["max_completion_tokens"] == 300 and "max_tokens" not in body and "temperature" not in body


def test_max_tokens_cut_is_reported_as_length(openai: OpenAIStandIn) -> None:
    openai.reply("one two three four five six seven")
    events = run(chat(max_tokens=3))
    assert text_of(events) == "one two three" and events[-1] == Finish("length")


def test_a_stream_that_breaks_mid_way_raises_after_the_partial_text(openai: OpenAIStandIn) -> None:
    openai.reply("one two three four five six seven eight", break_after=4)
    received: list[ProviderEvent] = []
    with pytest.raises(ProviderError) as error:
        for event in get_provider("openai").stream(chat()):
            received.append(event)
    assert error.value.retryable is True and "broke off after part of the answer" in str(error.value)
    assert text_of(received) == "one two three" and all(isinstance(e, TextDelta) for e in received)
    assert len(openai.chat_requests) == 1  # a broken stream is the runtime's to retry, not the SDK's


# --- tenants' endpoints: the outbound guard ---------------------------------------------------


@pytest.fixture
def tenant_server() -> Iterator[OpenAIStandIn]:
    """A tenant's own OpenAI-compatible server; here on 127.0.0.1, like an internal service."""
    server = OpenAIStandIn(api_key="tenant-key").start()
    yield server
    server.stop()


def tenant(base_url: str) -> ProviderCredentials:
    return ProviderCredentials(api_key="tenant-key", base_url=base_url)


def test_a_tenant_endpoint_on_an_internal_address_is_never_contacted(
    openai: OpenAIStandIn, tenant_server: OpenAIStandIn, settings: Any
) -> None:
    """A tenant's base URL pointing at an internal address gets nothing: not a connection, not
    the key. The operator's allow-list admits a self-hosted model server."""
    settings.OUTBOUND_ALLOWLIST = []
    with pytest.raises(ProviderError) as error:
        run(chat("hi"), tenant(tenant_server.base_url))
    assert tenant_server.requests == [] and error.value.retryable is False
    assert str(error.value) == UNREACHABLE.format(attempts=1)
    settings.OUTBOUND_ALLOWLIST = ["127.0.0.1/32"]
    assert text_of(run(chat("hi"), tenant(tenant_server.base_url))) == "Echo: hi [1]"
    assert openai.chat_requests == []


def test_a_rebinding_tenant_endpoint_never_reaches_the_internal_address(
    tenant_server: OpenAIStandIn, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name answers an allow-listed address (127.0.0.2, where nothing listens) and then
    127.0.0.1, where the internal service is: the SDK's connection goes to the checked address."""
    settings.OUTBOUND_ALLOWLIST = ["127.0.0.2/32"]
    settings.OPENAI_MAX_RETRIES = 0
    scripted_dns(monkeypatch, {"llm.rebind.test": ["127.0.0.2", "127.0.0.1"]})
    with pytest.raises(ProviderError):
        run(chat("hi"), tenant(f"http://llm.rebind.test:{tenant_server.port}/v1"))
    assert tenant_server.requests == []


def test_failures_of_a_tenant_endpoint_all_read_the_same(settings: Any) -> None:
    """A closed port, a port that never answers, and a service that is not an OpenAI server
    get one message, with no address, port, status or exception name in it: the test chat
    and the audit cannot be used to scan the network the platform sits in."""
    import socket

    settings.OUTBOUND_ALLOWLIST = ["127.0.0.1/32"]
    settings.OPENAI_TIMEOUT = 0.5
    settings.OPENAI_MAX_RETRIES = 0
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers
    messages: dict[str, str] = {}
    try:
        with local_site("127.0.0.1") as web, local_site("127.0.0.1") as admin:
            admin.page("/v1/chat/completions", "<h1>Admin console</h1>", status=401)
            for name, port in (
                ("closed", closed_port),
                ("silent", silent.getsockname()[1]),
                ("web server", web.port),
                ("admin", admin.port),
            ):
                with pytest.raises(ProviderError) as error:
                    run(chat("hi"), tenant(f"http://127.0.0.1:{port}/v1"))
                messages[name] = str(error.value)
    finally:
        silent.close()
    assert set(messages.values()) == {UNREACHABLE.format(attempts=1)}, messages


def test_a_trickling_answer_ends_at_the_deadline(tenant_server: OpenAIStandIn, settings: Any) -> None:
    """Each word arrives well within the read timeout, but the whole answer may take no longer
    than OPENAI_DEADLINE: the stream is cut there and the runtime abstains."""
    settings.OUTBOUND_ALLOWLIST = ["127.0.0.1/32"]
    settings.OPENAI_TIMEOUT = 1
    settings.OPENAI_DEADLINE = 1
    tenant_server.reply(" ".join(["word"] * 40), pace=0.1)
    seconds, result = elapsed(lambda: run(chat("hi"), tenant(tenant_server.base_url)))
    assert isinstance(result, ProviderError) and result.retryable is True, result
    assert 0.9 < seconds < 2.0


# --- token counting -----------------------------------------------------------------------------


def test_token_counts_are_tiktokens_from_packaged_encodings(monkeypatch: pytest.MonkeyPatch) -> None:
    import tiktoken_ext.openai_public as public

    # the patterns and special tokens match tiktoken's own definitions (its loader bypassed)
    for name in ("o200k_base", "cl100k_base"):
        ranks = tokens.load_ranks(name)
        monkeypatch.setattr(public, "load_tiktoken_bpe", lambda *_a, _r=ranks, **_k: _r)
        spec = getattr(public, name)()
        ours = tokens.get_encoding(name)
        assert ours is not None
        assert (ours._pat_str, ours._special_tokens, ours.n_vocab) == (
            spec["pat_str"],
            spec["special_tokens"],
            max([*ranks.values(), *spec["special_tokens"].values()]) + 1,
        )
    assert tokens.get_encoding("o200k_base").encode("hello world") == [24912, 2375]
    assert tokens.get_encoding("cl100k_base").encode("hello world") == [15339, 1917]
    # OpenAI cookbook "How to count tokens with tiktoken": this conversation is 129 prompt tokens
    # for gpt-4 and 124 for gpt-4o, as the API reports them
    example = [
        {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
        {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
        {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
        {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
        {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to do better."},
        {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client deliverable."},
    ]  # fmt: skip
    assert tokens.count_message_tokens(example, "gpt-4") == 129
    assert tokens.count_message_tokens(example, "gpt-4o-mini") == 124
    assert tokens.count_message_tokens(example, "some-local-model") == 124  # unknown: o200k_base
    assert tokens.count_tokens("<|endoftext|>", "gpt-4o") > 1  # plain text, never a special token or an error
    assert tokens.count_tokens("", "gpt-4o") == 0


def test_token_counting_never_reaches_the_network_and_falls_back_to_an_estimate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    def no_network(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("token counting tried the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    tokens.get_encoding.cache_clear()
    tokens.encoding_name_for.cache_clear()
    try:
        assert tokens.count_tokens("hello world", "gpt-4o") == 2  # built from the package, offline
        monkeypatch.setattr(tokens, "_data_file", lambda _name: None)  # the data package missing
        tokens.get_encoding.cache_clear()
        text = "Orders ship within 2 business days."
        assert tokens.count_tokens(text, "gpt-4o") == math.ceil(len(text) / 4)
        messages = [{"role": "user", "content": text}]
        assert tokens.count_message_tokens(messages, "gpt-4o") == 3 + 1 + math.ceil(len(text) / 4) + 3
        assert tokens.count_message_tokens([{"role": "user", "content": {"odd": object()}}], "gpt-4o") >= 0
    finally:
        tokens.get_encoding.cache_clear()


# --- the server-sent events, read without the SDK's typed chunks --------------------------------


def test_server_sent_events_are_read_as_the_format_says() -> None:
    """Comments and keep-alives are skipped, a data field may span lines, `[DONE]` ends it."""
    lines = [
        ": keep-alive",
        "",
        "event: message",
        'data: {"choices": [{"index": 0,',
        'data:  "delta": {"content": "Hi"}}]}',
        "",
        "",
        'data:{"usage": {"prompt_tokens": 3}}',
        "",
        "data: [DONE]",
        "",
        'data: {"after": "done"}',
        "",
    ]
    assert list(server_sent_data(lines)) == [
        {"choices": [{"index": 0, "delta": {"content": "Hi"}}]},
        {"usage": {"prompt_tokens": 3}},
    ]
    assert list(server_sent_data(['data: {"last": true}'])) == [{"last": True}]  # no blank line at the end

    endless = (
        'data: {"choices": [{"index": 0, "delta": {"content": "word "}}]}' if n % 2 == 0 else "" for n in range(10**9)
    )
    with pytest.raises(ValueError):
        for _chunk in server_sent_data(endless, limit=10_000):
            pass  # a server that never stops is cut off at the limit


@pytest.mark.parametrize(
    "chunks",
    [
        [{"choices": [{"index": 0, "delta": {"content": "Orders ship"}}]}, {"error": {"message": "overloaded"}}],
        [{"choices": [{"index": 0, "delta": {"content": "Orders ship"}}]}, "not json"],
    ],
    ids=["an error event", "data that is not JSON"],
)
def test_a_stream_reporting_an_error_or_sending_garbage_is_a_retryable_break(chunks: list[Any]) -> None:
    provider = get_provider("openai", ProviderCredentials(api_key=KEY))

    def wire() -> Iterator[Any]:
        for chunk in chunks:
            yield json.loads("{") if chunk == "not json" else chunk

    received: list[ProviderEvent] = []
    with pytest.raises(ProviderError) as error:
        for event in provider._events(wire(), chat(), "gpt-4o-mini"):  # type: ignore[attr-defined]
            received.append(event)
    assert error.value.retryable is True and "broke off after part of the answer" in str(error.value)
    assert text_of(received) == "Orders ship"


# --- many answers streaming at once ---------------------------------------------------------------


def test_one_process_streams_more_answers_at_once_than_an_http_client_pools_by_default(settings: Any) -> None:
    """The `llm` worker's threads each stream an answer; the provider's connections to one
    endpoint are as many as OPENAI_MAX_CONNECTIONS, not httpx's default of 100 (beyond which
    the extra turns would wait for a connection). 150 answers are in flight at once."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.standins.openai_server import Pacing

    server = OpenAIStandIn(api_key=KEY, pacing=Pacing(first_token=0.1, tokens_per_second=2, answer_tokens=10)).start()
    try:
        settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = KEY, server.base_url
        settings.OPENAI_TIMEOUT, settings.OPENAI_MAX_RETRIES = 20, 0
        with ThreadPoolExecutor(150) as pool:
            answers = list(pool.map(lambda _: text_of(run(chat())), range(150)))
        assert all(answers) and server.most_streams_open == 150
    finally:
        server.stop()
