"""Load generator for the widget WebSocket (BRIEF.md, "Widget WebSocket").

Real WebSocket clients (the `websockets` library, asyncio) on loopback open N visitor
connections spread round-robin over the given tenant inboxes; each says `hello` and gets its
`session`. A of them are active: each sends one `message` (unique client_id) every
`--interval` seconds (jittered +-10 %, first send at a random offset in the first interval)
for `--duration` seconds, with at most one message awaiting its ack (as the widget sends in
order; after 30 s without an ack it counts a timeout and goes on). When the server falls behind,
the achieved rate drops below the offered one and the report shows both: latencies are from
each message's actual send, so a server that is behind shows in the rate as well as in the
latencies. The others only hold their connection (the servers' keepalive pings are answered by
the library).

Measured, per run:
- connections opened, held at the end of the run and at the end of the check, refused or
  dropped (close codes), handshake + hello latency;
- ack latency: `message` sent -> its `ack` (the server acks after the message is stored);
- AI reply latency: ack -> the final `message` with role ai answering it (its client_id names
  the visitor seq it answers: `ai-<epoch>-<seq>`), and ack -> first `delta`;
- acked messages per second over the measured window, frames received, error frames by code;
- delivery checks by seq: every `message` frame received live, per conversation, must be
  unique and increasing; at the end every visitor sends `resume` with after_seq 0 (then
  `ping`, whose `pong` marks the end of the replay) and the replay must be 1..n without gaps or
  repeats (a skipped seq is reported as hidden: staff notes take a seq but are never sent to
  visitors), hold every acked client_id exactly once at its acked seq (else: lost /
  duplicated), and contain nothing (older than the settle deadline) that was not delivered live
  on a connection that stayed open (`live_missed`). A visitor whose connection dropped during
  the run reconnects with its token, as the widget does, and is checked the same way.

Bounded: the connection count, the measured duration, the settle wait and a hard wall-clock
limit (`--max-seconds`) are arguments; at the limit every socket is closed and the report says
`aborted`. Only loopback addresses are accepted as targets. The file-descriptor limit is
raised (soft to hard) and checked against the connection count before anything starts.

One client process can be split into `--processes` shards (forked; the phases are kept in
step with a barrier) when one process would saturate a core; the report gives the client's
CPU time so that can be judged.

Run (the servers and the data are set up by tests/bench/test_chat_load.py):
    python tests/bench/chat_load.py --port 8000 --target acme.localhost=<widget key> \
        --connections 500 --active 500 --duration 60 --out var/bench/chat_load_run.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import multiprocessing
import os
import random
import resource
import socket
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

QUESTIONS = (
    "How long does shipping take?",
    "Can I return an item I do not want?",
    "How do I reset my password?",
    "When does express shipping arrive?",
    "How many days do I have to return something?",
)
ACK_TIMEOUT = 30.0
HELLO_TIMEOUT = 30.0
VERIFY_TIMEOUT = 60.0
CLOSE_TIMEOUT = 5.0


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    """p50/p95/p99/max/mean in milliseconds of `values` (seconds); nearest-rank."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    ordered = sorted(values)

    def rank(q: float) -> float:
        index = max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 1)) - 1))
        return round(ordered[index] * 1000, 1)

    return {
        "n": len(ordered),
        "p50": rank(0.50),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": round(ordered[-1] * 1000, 1),
        "mean": round(sum(ordered) / len(ordered) * 1000, 1),
    }


@dataclass
class Target:
    host: str  # Host header, e.g. acme.localhost:8000
    key: str  # the inbox's widget key
    rate: float = 1.0  # its active visitors write this many times as often (`HOST=KEY@RATE`)


@dataclass
class Visitor:
    index: int
    target: Target
    active: bool
    ws: ClientConnection | None = None
    conversation_id: str = ""
    token: str = ""
    closed_code: int | None = None
    dropped_at: float | None = None  # wall time of the first unexpected close
    # live delivery
    live_seqs: list[int] = field(default_factory=list)
    out_of_order: int = 0
    # messages this visitor sent
    sent_at: dict[str, float] = field(default_factory=dict)  # client_id -> send time
    acked: dict[str, int] = field(default_factory=dict)  # client_id -> seq
    ack_waiters: dict[str, asyncio.Future[int]] = field(default_factory=dict)
    acked_at: dict[int, float] = field(default_factory=dict)  # visitor seq -> ack time
    pending_reply: set[int] = field(default_factory=set)  # acked visitor seqs not yet answered
    first_delta: set[int] = field(default_factory=set)
    # the end-of-run replay
    replaying: bool = False
    replay: list[dict[str, Any]] = field(default_factory=list)
    replay_done: asyncio.Event = field(default_factory=asyncio.Event)
    session: asyncio.Future[dict[str, Any]] | None = None


@dataclass
class Stats:
    hello: list[float] = field(default_factory=list)
    ack: list[float] = field(default_factory=list)
    reply: list[float] = field(default_factory=list)
    reply_by_host: dict[str, list[float]] = field(default_factory=dict)
    first_delta: list[float] = field(default_factory=list)
    counters: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # error frames by code
    connect_errors: Counter[str] = field(default_factory=Counter)
    close_codes: Counter[str] = field(default_factory=Counter)  # unexpected closes
    measuring: bool = False


class Shard:
    """The visitors of one client process and their event loop."""

    def __init__(self, args: argparse.Namespace, indexes: list[int], targets: list[Target]) -> None:
        self.args = args
        self.rng = random.Random(args.seed * 1000 + (indexes[0] if indexes else 0))
        self.visitors = [Visitor(index=i, target=targets[i % len(targets)], active=i < args.active) for i in indexes]
        self.stats = Stats()
        self.tasks: list[asyncio.Task[None]] = []
        self.phases: dict[str, float] = {}
        self.closing = False

    # --- one connection ------------------------------------------------------------------
    def _forwarded_for(self, index: int) -> str:
        # One client address per visitor (the server's per-address message limit applies to
        # each visitor, as behind a proxy); loopback addresses, used only as header values.
        return str(ipaddress.IPv4Address(int(ipaddress.IPv4Address("127.1.0.0")) + index))

    async def open(self, visitor: Visitor, *, reconnect: bool = False) -> None:
        host = visitor.target.host
        uri = f"ws://{host}/ws/widget/?key={visitor.target.key}"
        if reconnect:
            uri += f"&token={visitor.token}"
        started = time.perf_counter()
        try:
            visitor.ws = await connect(
                uri,
                host="127.0.0.1",
                port=self.args.port,
                proxy=None,
                origin=f"http://{host}",  # type: ignore[arg-type]
                additional_headers={"X-Forwarded-For": self._forwarded_for(visitor.index)},
                compression=None if self.args.compression == "none" else "deflate",
                open_timeout=HELLO_TIMEOUT,
                ping_interval=None,  # the servers ping; the library answers
                close_timeout=CLOSE_TIMEOUT,
                max_queue=256,
            )
        except InvalidStatus as exc:
            self.stats.connect_errors[f"http_{exc.response.status_code}"] += 1
            return
        except (OSError, TimeoutError) as exc:
            self.stats.connect_errors[type(exc).__name__] += 1
            return
        except Exception as exc:  # any other handshake failure is counted, not fatal
            self.stats.connect_errors[type(exc).__name__] += 1
            return
        loop = asyncio.get_running_loop()
        visitor.session = loop.create_future()
        self.tasks.append(asyncio.create_task(self.read(visitor)))
        try:
            await visitor.ws.send(json.dumps({"type": "hello"}))
            session = await asyncio.wait_for(asyncio.shield(visitor.session), HELLO_TIMEOUT)
        except (ConnectionClosed, TimeoutError) as exc:
            self.stats.connect_errors[f"hello_{type(exc).__name__}"] += 1
            return
        if reconnect:
            if str(session.get("conversation_id", "")) != visitor.conversation_id:
                self.stats.counters["reconnect_other_conversation"] += 1
            self.stats.counters["reconnected"] += 1
            return
        visitor.conversation_id = str(session.get("conversation_id", ""))
        visitor.token = str(session.get("token", ""))
        self.stats.hello.append(time.perf_counter() - started)
        self.stats.counters["sessions"] += 1

    async def read(self, visitor: Visitor) -> None:
        assert visitor.ws is not None
        try:
            async for raw in visitor.ws:
                now = time.perf_counter()
                self.stats.counters["frames_received"] += 1
                try:
                    frame = json.loads(raw)
                except ValueError:
                    self.stats.counters["unparseable_frames"] += 1
                    continue
                self.on_frame(visitor, frame, now)
        except ConnectionClosed:
            pass
        finally:
            code = visitor.ws.close_code
            visitor.closed_code = code if code is not None else 1006
            if not self.closing:
                self.stats.close_codes[str(visitor.closed_code)] += 1
                if visitor.dropped_at is None:
                    visitor.dropped_at = time.time()
            if visitor.session is not None and not visitor.session.done():
                visitor.session.set_exception(ConnectionClosed(None, None))
            for waiter in visitor.ack_waiters.values():
                if not waiter.done():
                    waiter.set_exception(RuntimeError("closed"))
            visitor.replay_done.set()

    def on_frame(self, visitor: Visitor, frame: dict[str, Any], now: float) -> None:
        kind = frame.get("type")
        counters = self.stats.counters
        if kind == "session":
            if visitor.session is not None and not visitor.session.done():
                visitor.session.set_result(frame)
        elif kind == "ack":
            client_id = str(frame.get("client_id"))
            seq = int(frame.get("seq", -1))
            previous = visitor.acked.get(client_id)
            if previous is not None and previous != seq:
                counters["ack_seq_changed"] += 1
            visitor.acked[client_id] = seq
            sent = visitor.sent_at.get(client_id)
            if sent is not None and previous is None:
                # Every message is sent inside the window; a late ack still counts, at its latency.
                self.stats.ack.append(now - sent)
                if self.stats.measuring:
                    counters["acked_in_window"] += 1
                visitor.acked_at[seq] = now
                visitor.pending_reply.add(seq)
            waiter = visitor.ack_waiters.pop(client_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(seq)
        elif kind == "message":
            seq = int(frame.get("seq", -1))
            if visitor.replaying:
                visitor.replay.append(frame)
                return
            if visitor.live_seqs and seq <= visitor.live_seqs[-1]:
                visitor.out_of_order += 1
            visitor.live_seqs.append(seq)
            counters[f"messages_{frame.get('role')}"] += 1
            if frame.get("role") == "ai":
                self.on_ai(visitor, frame, seq, now)
        elif kind == "delta":
            counters["deltas"] += 1
            trigger = frame.get("reply_to")
            if isinstance(trigger, int) and trigger in visitor.acked_at and trigger not in visitor.first_delta:
                visitor.first_delta.add(trigger)
                self.stats.first_delta.append(now - visitor.acked_at[trigger])
        elif kind == "pong":
            if visitor.replaying:
                visitor.replaying = False
                visitor.replay_done.set()
        elif kind == "error":
            code = str(frame.get("code"))
            self.stats.errors[code] += 1
            refers_to = frame.get("client_id")
            waiter = visitor.ack_waiters.pop(str(refers_to), None) if refers_to else None
            if waiter is not None and not waiter.done():
                waiter.set_exception(RuntimeError(code))
        else:
            counters[f"frames_{kind}"] += 1

    def on_ai(self, visitor: Visitor, frame: dict[str, Any], seq: int, now: float) -> None:
        """Match an AI reply to the visitor message it answers (client_id `ai-<epoch>-<seq>`,
        else the latest acked visitor message before it). Earlier unanswered messages were
        answered together with it (the AI answers the newest; older replies are superseded)."""
        trigger: int | None = None
        client_id = str(frame.get("client_id") or "")
        parts = client_id.split("-")
        if len(parts) == 3 and parts[0] == "ai" and parts[2].isdigit():
            trigger = int(parts[2])
        else:
            earlier = [s for s in visitor.pending_reply if s < seq]
            trigger = max(earlier) if earlier else None
        if trigger is None or trigger not in visitor.acked_at:
            self.stats.counters["ai_unmatched"] += 1
            return
        self.stats.reply.append(now - visitor.acked_at[trigger])
        self.stats.reply_by_host.setdefault(visitor.target.host, []).append(now - visitor.acked_at[trigger])
        covered = {s for s in visitor.pending_reply if s <= trigger}
        self.stats.counters["ai_superseded"] += len(covered - {trigger})
        visitor.pending_reply -= covered

    # --- phases ------------------------------------------------------------------------------
    async def ramp(self, rate: float) -> None:
        """Open every visitor's connection at `rate` per second, at most 200 handshakes at once."""
        gate = asyncio.Semaphore(200)
        started = time.perf_counter()

        async def one(position: int, visitor: Visitor) -> None:
            delay = started + position / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            async with gate:
                await self.open(visitor)

        await asyncio.gather(*(one(n, v) for n, v in enumerate(self.visitors)))

    async def talk(self, visitor: Visitor, until: float) -> None:
        """An active visitor: one message every interval (+-10 %) until `until`."""
        if not visitor.target.rate:
            return  # a silent workspace's visitors: connected, never writing
        interval = self.args.interval / visitor.target.rate
        next_at = time.perf_counter() + self.rng.uniform(0, interval)
        number = 0
        while next_at < until:
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.perf_counter() >= until or visitor.ws is None or visitor.closed_code is not None:
                return
            number += 1
            client_id = str(uuid.uuid4())
            # Questions the knowledge answers (the responder abstains on what it cannot ground).
            text = QUESTIONS[(visitor.index + number) % len(QUESTIONS)]
            waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            visitor.ack_waiters[client_id] = waiter
            visitor.sent_at[client_id] = time.perf_counter()
            self.stats.counters["messages_sent"] += 1
            try:
                await visitor.ws.send(json.dumps({"type": "message", "client_id": client_id, "text": text}))
                await asyncio.wait_for(waiter, ACK_TIMEOUT)
            except TimeoutError:
                self.stats.counters["ack_timeouts"] += 1
            except ConnectionClosed:
                return
            except RuntimeError:
                pass  # an error frame for this message (counted) or the socket closed
            # Behind schedule (a slow ack): the next message goes at once, missed slots are not
            # made up in a burst.
            next_at = max(next_at + interval * self.rng.uniform(0.9, 1.1), time.perf_counter())

    async def settle(self, deadline: float) -> None:
        """After the last send: wait for outstanding AI replies, until `deadline`."""
        while time.perf_counter() < deadline:
            if not any(v.pending_reply or v.ack_waiters for v in self.visitors if v.closed_code is None):
                return
            await asyncio.sleep(0.25)

    async def verify(self, visitor: Visitor, gate: asyncio.Semaphore) -> None:
        if not visitor.conversation_id:
            return
        async with gate:
            if visitor.ws is None or visitor.closed_code is not None:
                # Dropped during the run: come back as the widget does (token, hello), then
                # check the same way.
                visitor.closed_code = None
                await self.open(visitor, reconnect=True)
                if visitor.ws is None or visitor.closed_code is not None:
                    self.stats.counters["verify_failed"] += 1
                    return
            visitor.replay_done.clear()
            visitor.replaying = True
            try:
                await visitor.ws.send(json.dumps({"type": "resume", "after_seq": 0}))
                await visitor.ws.send(json.dumps({"type": "ping"}))
                await asyncio.wait_for(visitor.replay_done.wait(), VERIFY_TIMEOUT)
            except (ConnectionClosed, TimeoutError):
                self.stats.counters["verify_failed"] += 1
                return
            if visitor.closed_code is None:
                self.stats.counters["verified"] += 1

    def check(self, visitor: Visitor, cutoff_wall: float) -> Counter[str]:
        """Per conversation: gaps, repeats, acked messages missing or stored twice, and
        stored messages never delivered live."""
        found: Counter[str] = Counter()
        # Frames sent after `resume` was sent but before the server read it (the reply to a
        # message still queued behind it) are live deliveries; the replay starts at seq 1.
        start = next((n for n, f in enumerate(visitor.replay) if f.get("seq") == 1), len(visitor.replay))
        for f in visitor.replay[:start]:
            seq = int(f.get("seq", -1))
            if visitor.live_seqs and seq <= visitor.live_seqs[-1]:
                visitor.out_of_order += 1
            visitor.live_seqs.append(seq)
        visitor.replay = visitor.replay[start:]
        live = visitor.live_seqs
        found["live_duplicated"] += len(live) - len(set(live))
        found["live_out_of_order"] += visitor.out_of_order
        if not visitor.replay and not visitor.acked:
            return found
        if visitor.closed_code is not None and not visitor.replay:
            # No replay to compare with: what was acked cannot be checked here.
            found["unchecked_acked"] += len(visitor.acked)
            return found
        seqs = [int(f.get("seq", -1)) for f in visitor.replay]
        found["duplicated"] += len(seqs) - len(set(seqs))
        top = max(seqs) if seqs else 0
        found["gaps"] += len(set(range(1, top + 1)) - set(seqs))
        by_client: dict[str, list[int]] = {}
        for f in visitor.replay:
            if f.get("client_id"):
                by_client.setdefault(str(f["client_id"]), []).append(int(f["seq"]))
        for client_id, seq in visitor.acked.items():
            stored = by_client.get(client_id, [])
            if not stored:
                found["lost"] += 1
            elif len(stored) > 1:
                found["duplicated"] += len(stored) - 1
            elif stored[0] != seq:
                found["ack_seq_mismatch"] += 1
        for client_id in visitor.sent_at:
            if client_id not in visitor.acked and client_id in by_client:
                found["unacked_but_stored"] += 1
        seen_live = set(live)
        # Stored (before the settle deadline) but never sent live: on a connection that stayed
        # open that is a delivery loss; on one that dropped, the resume after reconnecting is
        # how the protocol delivers it (counted apart).
        missed = "live_missed" if visitor.dropped_at is None else "recovered_by_resume"
        for f in visitor.replay:
            if int(f["seq"]) not in seen_live and _wall(f.get("created_at")) < cutoff_wall:
                found[missed] += 1
        found["stored_messages"] += len(seqs)
        return found

    async def close_all(self) -> None:
        self.closing = True
        gate = asyncio.Semaphore(500)

        async def close(visitor: Visitor) -> None:
            if visitor.ws is not None:
                async with gate:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(visitor.ws.close(), CLOSE_TIMEOUT + 1)

        await asyncio.gather(*(close(v) for v in self.visitors))
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    # --- the run -----------------------------------------------------------------------------
    async def run(self, sync: Any) -> dict[str, Any]:
        args = self.args
        loop = asyncio.get_running_loop()

        async def barrier(name: str) -> None:
            if sync is not None:
                await loop.run_in_executor(None, sync.wait)
            self.phases[name] = time.time()

        self.phases["start"] = time.time()
        shards = max(1, args.processes)
        try:
            await asyncio.wait_for(self.ramp(args.ramp_rate / shards), args.ramp_timeout)
        except TimeoutError:
            self.stats.counters["ramp_timeout"] += 1  # go on with the connections that opened
        await barrier("ramp_done")
        announce("measure_start", self.phases["ramp_done"], sync)
        self.stats.measuring = True
        started = time.perf_counter()
        until = started + args.duration
        talkers = [asyncio.create_task(self.talk(v, until)) for v in self.visitors if v.active and v.conversation_id]
        await asyncio.sleep(max(0.0, until - time.perf_counter()))
        self.stats.measuring = False
        measured = time.perf_counter() - started
        self.phases["measure_end"] = time.time()
        announce("measure_end", self.phases["measure_end"], sync)
        await asyncio.gather(*talkers)  # the last sends wait for their acks (at most ACK_TIMEOUT)
        await self.settle(time.perf_counter() + args.settle)
        await barrier("settled")
        held = sum(1 for v in self.visitors if v.ws is not None and v.closed_code is None and v.conversation_id)
        gate = asyncio.Semaphore(100)
        await asyncio.gather(*(self.verify(v, gate) for v in self.visitors))
        self.phases["verified"] = time.time()
        held_after = sum(1 for v in self.visitors if v.ws is not None and v.closed_code is None and v.conversation_id)
        integrity: Counter[str] = Counter()
        examples: list[dict[str, Any]] = []
        for visitor in self.visitors:
            found = self.check(visitor, self.phases["settled"] - 2.0)
            integrity.update(found)
            bad = {
                k: v
                for k, v in found.items()
                if v and k not in ("stored_messages", "unchecked_acked", "recovered_by_resume")
            }
            if bad and len(examples) < 5:
                examples.append(
                    {
                        "visitor": visitor.index,
                        "conversation": visitor.conversation_id,
                        "found": bad,
                        "closed_code": visitor.closed_code,
                        "live_seqs": visitor.live_seqs[-40:],
                        "replay": [(f.get("seq"), f.get("role"), f.get("client_id")) for f in visitor.replay][-40:],
                        "acked": sorted(visitor.acked.values()),
                    }
                )
        unanswered = sum(len(v.pending_reply) for v in self.visitors)
        await self.close_all()
        self.phases["closed"] = time.time()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "visitors": len(self.visitors),
            "held": held,
            "held_after_check": held_after,
            "measured_seconds": measured,
            "hello": self.stats.hello,
            "ack": self.stats.ack,
            "reply": self.stats.reply,
            "reply_by_host": self.stats.reply_by_host,
            "first_delta": self.stats.first_delta,
            "counters": dict(self.stats.counters),
            "errors": dict(self.stats.errors),
            "connect_errors": dict(self.stats.connect_errors),
            "close_codes": dict(self.stats.close_codes),
            "integrity": dict(integrity),
            "integrity_examples": examples,
            "unanswered": unanswered,
            "phases": self.phases,
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "max_rss_mb": usage.ru_maxrss / 1024,
        }


def _wall(stamp: Any) -> float:
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(stamp)).timestamp()
    except ValueError:
        return 0.0


def announce(phase: str, at: float, sync: Any) -> None:
    """A line the harness reads to start/stop its profiler (printed once, by shard 0)."""
    if sync is None or getattr(sync, "shard", 0) == 0:
        print(json.dumps({"phase": phase, "at": at}), flush=True)


def raise_fd_limit(needed: int) -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft < needed:
        raise SystemExit(f"file-descriptor limit {soft} < {needed} needed for this run; raise the hard limit")
    return soft, hard


def _install_loop() -> str:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        return "uvloop"
    return "asyncio"


def _shard_main(args: argparse.Namespace, indexes: list[int], targets: list[Target], sync: Any, out: Any) -> None:
    _install_loop()

    async def main() -> dict[str, Any]:
        shard = Shard(args, indexes, targets)
        try:
            return await shard.run(sync)
        finally:
            with contextlib.suppress(Exception):
                await shard.close_all()

    try:
        out.put(asyncio.run(main()))
    except BaseException as exc:  # report, never hang the parent
        out.put({"failed": f"{type(exc).__name__}: {exc}"})
        if sync is not None:
            with contextlib.suppress(Exception):
                sync.abort()


class _Sync:
    """A barrier that also says which shard this is (only shard 0 prints phase lines)."""

    def __init__(self, barrier: Any, shard: int) -> None:
        self.barrier, self.shard = barrier, shard

    def wait(self) -> None:
        self.barrier.wait(timeout=600)

    def abort(self) -> None:
        self.barrier.abort()


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    failed = [p["failed"] for p in parts if "failed" in p]
    parts = [p for p in parts if "failed" not in p]
    total: dict[str, Any] = {"failed_shards": failed}
    for key in ("hello", "ack", "reply", "first_delta"):
        total[key] = [x for p in parts for x in p[key]]
    total["reply_by_host"] = {}
    for p in parts:
        for host, values in p["reply_by_host"].items():
            total["reply_by_host"].setdefault(host, []).extend(values)
    for key in ("counters", "errors", "connect_errors", "close_codes", "integrity"):
        merged: Counter[str] = Counter()
        for p in parts:
            merged.update(p[key])
        total[key] = dict(merged)
    for key in ("visitors", "held", "held_after_check", "unanswered", "cpu_seconds"):
        total[key] = sum(p[key] for p in parts)
    total["max_rss_mb"] = max((p["max_rss_mb"] for p in parts), default=0)
    total["measured_seconds"] = max((p["measured_seconds"] for p in parts), default=0)
    total["phases"] = parts[0]["phases"] if parts else {}
    total["integrity_examples"] = [e for p in parts for e in p.get("integrity_examples", [])][:10]
    return total


def report(args: argparse.Namespace, raw: dict[str, Any], loop_name: str, fd_limit: tuple[int, int]) -> dict[str, Any]:
    rates = [float(spec.partition("@")[2] or 1) for spec in args.target]  # checked by `main`
    counters = raw["counters"]
    integrity = raw["integrity"]
    acked = counters.get("acked_in_window", 0)
    seconds = raw["measured_seconds"] or 1.0
    phases = raw["phases"]
    return {
        "config": {
            "port": args.port,
            "targets": len(args.target),
            "connections": args.connections,
            "active": args.active,
            "interval_s": args.interval,
            "duration_s": args.duration,
            "settle_s": args.settle,
            "ramp_rate_per_s": args.ramp_rate,
            "processes": args.processes,
            "compression": args.compression,
            "client_loop": loop_name,
            "fd_limit": list(fd_limit),
        },
        "aborted": bool(raw.get("aborted")) or bool(raw["failed_shards"]),
        "failed_shards": raw["failed_shards"],
        "connections": {
            "target": args.connections,
            "sessions": counters.get("sessions", 0),
            "held": raw["held"],
            "held_after_check": raw["held_after_check"],
            "connect_errors": raw["connect_errors"],
            "unexpected_closes": raw["close_codes"],
            "reconnected_for_check": counters.get("reconnected", 0),
            "reconnect_other_conversation": counters.get("reconnect_other_conversation", 0),
            "ramp_seconds": round(phases.get("ramp_done", 0) - phases.get("start", 0), 1),
            "ramp_timed_out": bool(counters.get("ramp_timeout")),
            "hello_ms": percentiles(raw["hello"]),
        },
        "messages": {
            "sent": counters.get("messages_sent", 0),
            "acked": len(raw["ack"]),
            "acked_in_window": acked,
            "per_second": round(acked / seconds, 1),
            "offered_per_second": round(sum(rates[i % len(rates)] for i in range(args.active)) / args.interval, 1),
            "measured_seconds": round(seconds, 1),
            "ack_timeouts": counters.get("ack_timeouts", 0),
            "ack_ms": percentiles(raw["ack"]),
            "ai_replies": len(raw["reply"]),
            "ai_reply_ms": percentiles(raw["reply"]),
            "ai_reply_ms_by_target": {
                host: {"replies": len(values), **percentiles(values)}
                for host, values in sorted(raw["reply_by_host"].items())
            },
            "ai_first_delta_ms": percentiles(raw["first_delta"]),
            "ai_superseded": counters.get("ai_superseded", 0),
            "ai_unanswered_at_end": raw["unanswered"],
            "ai_unmatched": counters.get("ai_unmatched", 0),
            "deltas": counters.get("deltas", 0),
            "handoff_frames": counters.get("frames_handoff", 0),
            "frames_received": counters.get("frames_received", 0),
        },
        "errors": {
            "error_frames": raw["errors"],
            "connect_errors": sum(raw["connect_errors"].values()),
            "unexpected_closes": sum(raw["close_codes"].values()),
            "ack_timeouts": counters.get("ack_timeouts", 0),
            "verify_failed": counters.get("verify_failed", 0),
            "total": sum(raw["errors"].values())
            + sum(raw["connect_errors"].values())
            + sum(raw["close_codes"].values())
            + counters.get("ack_timeouts", 0)
            + counters.get("verify_failed", 0),
        },
        "integrity": {
            "conversations_checked": counters.get("verified", 0),
            "stored_messages": integrity.get("stored_messages", 0),
            "lost": integrity.get("lost", 0),
            "duplicated": integrity.get("duplicated", 0),
            # Seqs the replay skips: staff notes are stored in the conversation's sequence but
            # never sent to visitors, so a visitor cannot tell a note from a loss; `lost` (acked
            # client_ids missing from the store) is the check that no message was lost.
            "hidden_seqs": integrity.get("gaps", 0),
            "ack_seq_mismatch": integrity.get("ack_seq_mismatch", 0) + counters.get("ack_seq_changed", 0),
            "live_duplicated": integrity.get("live_duplicated", 0),
            "live_out_of_order": integrity.get("live_out_of_order", 0),
            "live_missed": integrity.get("live_missed", 0),
            "recovered_by_resume": integrity.get("recovered_by_resume", 0),
            "unacked_but_stored": integrity.get("unacked_but_stored", 0),
            "unchecked_acked": integrity.get("unchecked_acked", 0),
            "examples": raw.get("integrity_examples", []),
        },
        "client": {
            "cpu_seconds": round(raw["cpu_seconds"], 1),
            "max_rss_mb": round(raw["max_rss_mb"], 1),
        },
        "phases": phases,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--address", default="127.0.0.1", help="loopback address of the server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--target",
        action="append",
        required=True,
        help="HOST=WIDGET_KEY, e.g. acme.localhost=wk_...; repeat; HOST=WIDGET_KEY@10: that workspace's "
        "visitors write 10 times as often (a noisy workspace)",
    )
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--active", type=int, required=True, help="how many of them send messages")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between an active visitor's messages")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of sending (the measured window)")
    parser.add_argument("--settle", type=float, default=30.0, help="max seconds to wait for outstanding replies")
    parser.add_argument("--ramp-rate", type=float, default=250.0, help="new connections per second")
    parser.add_argument("--ramp-timeout", type=float, default=180.0)
    parser.add_argument("--processes", type=int, default=1, help="client processes (shards)")
    parser.add_argument("--compression", choices=("none", "deflate"), default="none")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-seconds", type=float, default=600.0, help="hard limit for the whole run")
    parser.add_argument("--out", help="write the JSON report here (else stdout)")
    args = parser.parse_args(argv)
    if not ipaddress.ip_address(socket.gethostbyname(args.address)).is_loopback:
        parser.error("only loopback servers may be loaded")
    if args.address != "127.0.0.1":
        parser.error("connect to 127.0.0.1 (tenant hosts go in the Host header)")
    if not 0 <= args.active <= args.connections or args.connections < 1:
        parser.error("need 1 <= connections and 0 <= active <= connections")
    if args.connections > 20000 or args.duration > 3600:
        parser.error("bounded: at most 20,000 connections and one hour")
    return args


def parse_targets(args: argparse.Namespace) -> list[Target]:
    """The `--target HOST=WIDGET_KEY[@RATE]` arguments."""
    targets = []
    for spec in args.target:
        host, _, key = spec.partition("=")
        key, _, rate = key.partition("@")
        if not key or (rate and not rate.replace(".", "", 1).isdigit()):
            raise SystemExit(f"--target {spec!r}: expected HOST=WIDGET_KEY or HOST=WIDGET_KEY@RATE")
        targets.append(Target(host=host if ":" in host else f"{host}:{args.port}", key=key, rate=float(rate or 1)))
    return targets


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    targets = parse_targets(args)
    shards = max(1, args.processes)
    fd_limit = raise_fd_limit(args.connections // shards + 1 + 256)
    indexes = [list(range(args.connections))[i::shards] for i in range(shards)]
    ctx = multiprocessing.get_context("fork")
    out: Any = ctx.Queue()
    loop_name = "uvloop" if _has_uvloop() else "asyncio"
    if shards == 1:
        process = ctx.Process(target=_shard_main, args=(args, indexes[0], targets, None, out), daemon=True)
        processes = [process]
    else:
        barrier = ctx.Barrier(shards)
        processes = [
            ctx.Process(target=_shard_main, args=(args, indexes[i], targets, _Sync(barrier, i), out), daemon=True)
            for i in range(shards)
        ]
    deadline = time.monotonic() + args.max_seconds
    for process in processes:
        process.start()
    parts: list[dict[str, Any]] = []
    aborted = False
    while len(parts) < shards:
        try:
            parts.append(out.get(timeout=max(0.1, deadline - time.monotonic())))
        except Exception:
            aborted = True
            break
    for process in processes:
        process.join(timeout=CLOSE_TIMEOUT)
        if process.is_alive():
            process.kill()  # our own child, by handle
            aborted = True
    raw = merge(parts) if parts else merge([{"failed": "no shard reported"}])
    raw["aborted"] = aborted
    return write_report(args, report(args, raw, loop_name, fd_limit))


def write_report(args: argparse.Namespace, result: dict[str, Any]) -> int:
    """The run's report to --out (or stdout), the `done` phase announced; the exit status."""
    text = json.dumps(result, indent=2, sort_keys=True)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text)
    print(json.dumps({"phase": "done", "at": time.time(), "aborted": result["aborted"]}), flush=True)
    if not args.out:
        print(text)
    return 1 if result["aborted"] else 0


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    # Runnable as a script from the repository root or from here.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main())
