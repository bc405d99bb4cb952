"""HTTP framing and SSE block scanning, byte by byte: every split of a response gives the same answer."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from llmops.bench import http, sse
from llmops.bench.client import RequestRecord, _ChatStream


def chunked(*pieces: bytes, extension: bytes = b"") -> bytes:
    return b"".join(b"%x%s\r\n%s\r\n" % (len(p), extension, p) for p in pieces) + b"0\r\n\r\n"


def event(delta: dict, **extra: object) -> bytes:
    doc = {"id": "chatcmpl-7", "choices": [{"index": 0, "delta": delta, "finish_reason": None}], **extra}
    return b"data: " + json.dumps(doc, separators=(",", ":")).encode() + b"\n\n"


FINAL = (b'data: {"id":"chatcmpl-7","choices":[{"index":0,"delta":{},"finish_reason":"length"}]}\n\n'
         b'data: {"id":"chatcmpl-7","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,'
         b'"total_tokens":12,"completion_tokens_details":{"reasoning_tokens":1}}}\n\n'
         b"data: [DONE]\n\n")
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


class Recorder:
    def __init__(self) -> None:
        self.status = 0
        self.body = b""
        self.ended = False
        self.error: BaseException | None = None

    def on_head(self, status: int, reason: str, headers: dict[str, str], t: float) -> None:
        self.status = status

    def on_body(self, data: bytes, t: float) -> None:
        self.body += data

    def on_end(self, t: float) -> None:
        self.ended = True

    def on_error(self, exc: BaseException, t: float) -> None:
        self.error = exc


def sse_lines(body: bytes) -> list[bytes]:
    """The SSE data lines of a body (framing lines, which the fast path passes along, dropped)."""
    return [line.rstrip(b"\r") for line in body.split(b"\n") if line.startswith(b"data:")]


def feed_in_two(raw: bytes, cut: int) -> Recorder:
    rec = Recorder()
    parser = http.ResponseParser(rec)
    parser.feed(raw[:cut], 0.0)
    if cut < len(raw):
        parser.feed(raw[cut:], 1.0)
    return rec


@pytest.mark.parametrize("split_events", [False, True], ids=["event-per-chunk", "events-cut-by-chunks"])
def test_chunked_body_same_for_every_split(split_events: bool) -> None:
    body = event({"role": "assistant", "content": ""}) + event({"content": "Hi"}) + event({"content": " there"}) + FINAL
    pieces = [body[i:i + 37] for i in range(0, len(body), 37)] if split_events else \
        [e + b"\n\n" for e in body.split(b"\n\n") if e]
    raw = HEAD + chunked(*pieces)
    for cut in range(1, len(raw) + 1):
        rec = feed_in_two(raw, cut)
        assert rec.ended and rec.status == 200, cut
        assert sse_lines(rec.body) == sse_lines(body), cut


@pytest.mark.parametrize("split_events", [False, True], ids=["event-per-chunk", "events-cut-by-chunks"])
def test_chunked_body_same_for_random_many_way_splits(split_events: bool) -> None:
    body = b"".join(event({"content": f"t{i}"}) for i in range(12)) + FINAL
    pieces = [body[i:i + 29] for i in range(0, len(body), 29)] if split_events else \
        [e + b"\n\n" for e in body.split(b"\n\n") if e]
    raw = HEAD + chunked(*pieces)
    rng = random.Random(7)
    for _ in range(400):
        cuts = sorted(rng.sample(range(1, len(raw)), rng.randint(1, 12)))
        rec = Recorder()
        parser = http.ResponseParser(rec)
        for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=False):
            parser.feed(raw[a:b], 0.0)
        assert rec.ended and sse_lines(rec.body) == sse_lines(body), cuts


def test_chunk_extensions_and_trailers() -> None:
    body = event({"content": "x"}) + FINAL
    raw = HEAD + chunked(body, extension=b";name=value")[:-2] + b"X-Trailer: 1\r\n\r\n"
    rec = feed_in_two(raw, len(raw))
    assert rec.ended and sse_lines(rec.body) == sse_lines(body)


def test_content_length_and_close_delimited_bodies() -> None:
    body = b'{"data": [{"id": "m"}]}'
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    for cut in range(1, len(raw) + 1):
        rec = feed_in_two(raw, cut)
        assert rec.ended and rec.body == body
    rec = Recorder()
    parser = http.ResponseParser(rec)
    parser.feed(b"HTTP/1.0 200 OK\r\n\r\n" + body, 0.0)
    assert not rec.ended
    parser.feed_eof(1.0)
    assert rec.ended and rec.body == body and not parser.keep_alive


def test_eof_mid_body_is_a_lost_connection() -> None:
    parser = http.ResponseParser(Recorder())
    parser.feed(HEAD + b"10\r\ndata: {}\n\n", 0.0)
    with pytest.raises(http.ConnectionLost) as info:
        parser.feed_eof(1.0)
    assert "mid-response" in str(info.value) and not info.value.before_response
    with pytest.raises(http.ConnectionLost) as info:
        http.ResponseParser(Recorder()).feed_eof(1.0)
    assert info.value.before_response


def test_garbage_is_a_protocol_error() -> None:
    with pytest.raises(http.HttpError):
        http.ResponseParser(Recorder()).feed(b"SSH-2.0-OpenSSH\r\n\r\n", 0.0)
    with pytest.raises(http.HttpError):
        http.ResponseParser(Recorder()).feed(HEAD + b"zz\r\n", 0.0)


def stream_record(body: bytes, cuts: list[int]) -> RequestRecord:
    """Feed a de-chunked SSE body to the chat sink in pieces, each piece one 'read' at time = its index."""
    record = RequestRecord(level=0, concurrency=1, index=0, phase="measure")
    loop = asyncio.new_event_loop()
    try:
        sink = _ChatStream(record, loop.create_future(), None)
        sink.on_head(200, "OK", {}, 0.0)
        bounds = [0, *cuts, len(body)]
        for i in range(len(bounds) - 1):
            if bounds[i + 1] > bounds[i]:
                sink.on_body(body[bounds[i]:bounds[i + 1]], float(i + 1))
        sink.on_end(float(len(bounds)))
    finally:
        loop.close()
    return record


def test_sink_counts_reasoning_content_and_usage_for_any_split() -> None:
    body = (event({"role": "assistant", "content": ""}) + event({"reasoning_content": "think"})
            + event({"content": "a"}) + event({"content": "b"}) + FINAL)
    for cut in range(1, len(body)):
        r = stream_record(body, [cut])
        assert r.ok, (cut, r.error)
        assert (r.reasoning_events, r.content_events) == (1, 2), cut
        assert (r.completion_tokens, r.prompt_tokens, r.reasoning_tokens) == (3, 9, 1)
        assert r.tokens_source == "usage" and r.finish_reason == "length" and r.response_id == "chatcmpl-7"
        assert r.t_first_token is not None and r.t_first_token <= r.t_first_content  # type: ignore[operator]


def test_one_read_per_event_gives_first_token_first_content_and_last_token_times() -> None:
    events = [event({"role": "assistant", "content": ""}), event({"reasoning": "hm"}), event({"content": "x"}),
              event({"content": "y"}), FINAL]
    body = b"".join(events)
    cuts, pos = [], 0
    for e in events[:-1]:
        pos += len(e)
        cuts.append(pos)
    r = stream_record(body, cuts)
    # reads are timed 1, 2, 3, ...: role (1), reasoning (2), content (3), content (4), the end (5)
    assert (r.t_first_chunk, r.t_first_token, r.t_first_reasoning, r.t_first_content, r.t_last_token) == \
        (1.0, 2.0, 2.0, 3.0, 4.0)
    assert list(r.chunk_times) == [2.0, 3.0, 4.0] and list(r.chunk_tokens) == [1, 1, 1]


def test_running_counts_give_tokens_per_event() -> None:
    def counted(text: str, n: int) -> bytes:
        return event({"content": text}, usage={"prompt_tokens": 5, "completion_tokens": n, "total_tokens": 5 + n})
    body = (event({"role": "assistant", "content": ""}, usage={"prompt_tokens": 5, "completion_tokens": 0,
                                                                 "total_tokens": 5})
            + counted("ab", 2) + counted("cdef", 6) + counted("g", 7)
            + b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"length"}],"usage":{"prompt_tokens":5,'
              b'"completion_tokens":7,"total_tokens":12}}\n\ndata: [DONE]\n\n')
    r = stream_record(body, [body.index(b"cdef") - 40, body.index(b'"g"') - 40])
    assert r.per_chunk_counts and r.completion_tokens == 7 and r.streamed_tokens == 7
    assert list(r.chunk_tokens) == [2, 4, 1]


def test_spaced_json_and_completions_text_use_the_careful_path() -> None:
    body = (b'data: {"choices": [{"delta": {"content": "a"}}]}\n\n'
            b'data: {"choices": [{"delta": {"content": ""}}]}\n\n'
            b'data: {"choices": [{"delta": {"content": "b"}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n')
    r = stream_record(body, [10, 60])
    assert r.ok and r.content_events == 2 and r.completion_tokens == 2 and r.tokens_source == "estimate"
    text = (b'data: {"choices":[{"text":"x","index":0}]}\n\ndata: {"choices":[{"text":"y","index":0,'
            b'"finish_reason":"length"}]}\n\ndata: [DONE]\n\n')
    r = stream_record(text, [5])
    assert r.ok and r.content_events == 2


def test_model_text_that_looks_like_keys_is_not_counted() -> None:
    sneaky = json.dumps('"content":"x" data: [DONE] "error": 1 "finish_reason":"stop"')
    body = (b'data: {"choices":[{"delta":{"content":' + sneaky.encode() + b'}}]}\n\n'
            b'data: {"choices":[{"delta":{"content":"z"}}]}\n\n')
    r = stream_record(body, [])
    assert r.content_events == 2 and r.error_kind == "truncated"  # no [DONE], no finish_reason


def test_error_event_is_a_stream_error_with_its_message() -> None:
    body = (event({"content": "a"}) + b'data: {"error":{"message":"out of memory","type":"server_error",'
            b'"code":500}}\n\ndata: [DONE]\n\n')
    r = stream_record(body, [3])
    assert not r.ok and r.error_kind == "stream_error" and "out of memory" in (r.error or "")


def test_http_error_body_is_kept() -> None:
    record = RequestRecord(level=0, concurrency=1, index=0, phase="measure")
    loop = asyncio.new_event_loop()
    try:
        sink = _ChatStream(record, loop.create_future(), "sk-secret")
        sink.on_head(429, "Too Many Requests", {}, 0.0)
        sink.on_body(b'{"error": "slow down, sk-secret"}', 0.5)
        sink.on_end(0.6)
    finally:
        loop.close()
    assert record.error_kind == "http_429" and record.error is not None
    assert record.error.startswith("HTTP 429 Too Many Requests:") and "slow down" in record.error
    assert "sk-secret" not in record.error


def test_final_counts_fall_back_to_timings() -> None:
    line = b'data: {"choices":[],"timings":{"prompt_n":4,"cache_n":6,"predicted_n":12,"predicted_ms":30.5}}'
    counts = sse.final_counts(None, line)
    assert (counts.source, counts.completion_tokens, counts.prompt_tokens, counts.cached_tokens) == \
        ("timings", 12, 10, 6)
    assert counts.server_timings["predicted_ms"] == 30.5


LLAMA_CPP = (  # what llama-server sends with timings_per_token (shortened timings)
    b'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}],'
    b'"id":"chatcmpl-L","object":"chat.completion.chunk"}\n\n'
    b'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":"\xe7\xbe\x85"}}],"id":"chatcmpl-L",'
    b'"timings":{"cache_n":0,"prompt_n":8,"predicted_n":2,"predicted_ms":0.1}}\n\n'
    b'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":" OK"}}],"id":"chatcmpl-L",'
    b'"timings":{"cache_n":0,"prompt_n":8,"predicted_n":3,"predicted_ms":1.9}}\n\n'
    b'data: {"choices":[{"finish_reason":"length","index":0,"delta":{}}],"id":"chatcmpl-L"}\n\n'
    b'data: {"choices":[],"id":"chatcmpl-L","usage":{"completion_tokens":3,"prompt_tokens":8,"total_tokens":11,'
    b'"prompt_tokens_details":{"cached_tokens":0}},"timings":{"cache_n":0,"prompt_n":8,"predicted_n":3,'
    b'"predicted_ms":3.6}}\n\ndata: [DONE]\n\n')


@pytest.mark.parametrize("reads", ["one read", "a read per event"])
def test_llama_cpp_running_counts_in_one_read_or_many(reads: str) -> None:
    cuts = [] if reads == "one read" else [i + 2 for i in range(len(LLAMA_CPP)) if LLAMA_CPP.startswith(b"\n\n", i)]
    r = stream_record(LLAMA_CPP, cuts[:-1])
    assert r.ok and r.per_chunk_counts and r.response_id == "chatcmpl-L"
    # the first event brought two tokens (one character made of two), the second one more
    assert (r.completion_tokens, r.streamed_tokens, r.content_events) == (3, 3, 2)
    assert r.server_timings["predicted_n"] == 3 and r.prompt_tokens == 8 and r.cached_tokens == 0
