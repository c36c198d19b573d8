"""Load generator for the fault benchmark (tests/bench/test_faults.py): the chat load
generator's visitors (tests/bench/chat_load.py: the same phases, frames, replay check and
report) that, like the widget, come back when their connection drops during the run.

A visitor whose socket closes while the run is on reconnects with its token, with the widget's
backoff (exponential, full jitter: a random wait up to 1 s, 2 s, 4 s ... capped at 30 s), says
`hello` (an `error` frame instead of the `session` is a failed attempt: the socket is closed and
the backoff goes on), then `resume`s after the last seq it saw; a message that was not
acknowledged when its socket dropped is sent again with the same client_id, as the widget does
(a repeated client_id is acknowledged again and never stored twice). A message whose ack does
not come within the ack timeout is sent again the same way, and so is one refused with an error
frame naming it, after a second; a message is given up (and counted) only when the run ends
without its ack.

Added to the chat load report, under `faults`: the reconnect time of every dropped visitor (the
drop seen by the client -> the `session` frame on the new socket; p50/p95/p99/max ms), how many
visitors dropped and came back, failed reconnect attempts by cause, messages sent again (after a
reconnect, after an ack timeout, after an error frame) and messages given up.

Run (the servers and the data are set up by tests/bench/test_faults.py):
    python tests/bench/fault_load.py --port 8080 --target acme.localhost=<widget key> \
        --connections 1000 --active 1000 --interval 45 --duration 90 --out var/bench/faults_run.json
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections import Counter
from typing import Any

# Runnable as a script: the repository's root goes on the path first.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from websockets.exceptions import ConnectionClosed

from tests.bench.chat_load import (
    ACK_TIMEOUT,
    QUESTIONS,
    Shard,
    Target,
    Visitor,
    _install_loop,
    merge,
    parse_args,
    parse_targets,
    percentiles,
    raise_fd_limit,
    report,
    write_report,
)

BACKOFF_BASE = 1.0  # the widget's (static/widget/syntera.js)
BACKOFF_CAP = 30.0
ERROR_RETRY = 1.0  # seconds before a message refused with an error frame is sent again


class FaultShard(Shard):
    """Visitors that reconnect and resume during the run, and re-send what was not acked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.running = False  # from the end of the ramp to the end of the settle wait
        self.coming_back: set[int] = set()  # visitors reconnecting now
        self.reconnect_times: list[float] = []
        self.faults: Counter[str] = Counter()

    # --- dropped connections come back ------------------------------------------------------
    async def read(self, visitor: Visitor) -> None:
        ws = visitor.ws
        await super().read(visitor)
        if self.running and not self.closing and visitor.ws is ws and visitor.index not in self.coming_back:
            self.coming_back.add(visitor.index)
            self.tasks.append(asyncio.create_task(self.come_back(visitor)))

    def on_frame(self, visitor: Visitor, frame: dict[str, Any], now: float) -> None:
        if self.running and frame.get("type") == "error" and visitor.session is not None and not visitor.session.done():
            # The server could not start the session (hello refused): a failed attempt.
            visitor.session.set_exception(RuntimeError(str(frame.get("code"))))
        super().on_frame(visitor, frame, now)

    def _in_session(self, visitor: Visitor) -> bool:
        session = visitor.session
        return (
            visitor.ws is not None
            and visitor.closed_code is None
            and session is not None
            and session.done()
            and not session.cancelled()
            and session.exception() is None
        )

    async def come_back(self, visitor: Visitor) -> None:
        """Reconnect with the token as the widget does, then resume after the last seq seen."""
        dropped = time.perf_counter()
        self.faults["dropped"] += 1
        attempt = 0
        try:
            while self.running and not self.closing:
                await asyncio.sleep(self.rng.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)))
                attempt += 1
                old = visitor.ws
                visitor.ws, visitor.closed_code = None, None
                if old is not None:
                    await _close_quietly(old)
                before = sum(self.stats.connect_errors.values())
                try:
                    await self.open(visitor, reconnect=True)
                except Exception as exc:  # never let one visitor's attempt end the run
                    self.faults[f"attempt_{type(exc).__name__}"] += 1
                if self._in_session(visitor):
                    self.reconnect_times.append(time.perf_counter() - dropped)
                    self.faults["came_back"] += 1
                    after = visitor.live_seqs[-1] if visitor.live_seqs else 0
                    assert visitor.ws is not None
                    await visitor.ws.send(json.dumps({"type": "resume", "after_seq": after}))
                    return
                if sum(self.stats.connect_errors.values()) == before:
                    self.faults["attempt_hello_refused"] += 1
                self.faults["attempts_failed"] += 1
                if visitor.ws is not None:
                    await _close_quietly(visitor.ws)
                    visitor.closed_code = visitor.closed_code or 1000
            self.faults["not_back_by_the_end"] += 1
        except ConnectionClosed:
            self.faults["closed_while_resuming"] += 1
        finally:
            self.coming_back.discard(visitor.index)

    async def _until_connected(self, visitor: Visitor, deadline: float) -> bool:
        while time.perf_counter() < deadline:
            if self._in_session(visitor) and visitor.index not in self.coming_back:
                return True
            await asyncio.sleep(0.05)
        return False

    # --- the phases ------------------------------------------------------------------------
    async def ramp(self, rate: float) -> None:
        await super().ramp(rate)
        self.running = True

    async def talk(self, visitor: Visitor, until: float) -> None:
        """An active visitor: one message every interval (+-10 %) until `until`, each sent until
        it is acknowledged (again after a reconnect, an ack timeout or an error frame)."""
        if not visitor.target.rate:
            return
        interval = self.args.interval / visitor.target.rate
        next_at = time.perf_counter() + self.rng.uniform(0, interval)
        number = 0
        give_up = until + self.args.settle
        while next_at < until:
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.perf_counter() >= until:
                return
            number += 1
            client_id = str(uuid.uuid4())
            text = QUESTIONS[(visitor.index + number) % len(QUESTIONS)]
            visitor.sent_at[client_id] = time.perf_counter()
            self.stats.counters["messages_sent"] += 1
            tries, why = 0, ""
            while client_id not in visitor.acked:
                if not await self._until_connected(visitor, give_up):
                    self.faults["messages_given_up"] += 1
                    return
                if tries:
                    self.faults[f"resent_after_{why}"] += 1
                tries += 1
                waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
                visitor.ack_waiters[client_id] = waiter
                why = "error_frame"  # unless one of the others below
                try:
                    assert visitor.ws is not None
                    await visitor.ws.send(json.dumps({"type": "message", "client_id": client_id, "text": text}))
                    await asyncio.wait_for(waiter, ACK_TIMEOUT)
                except TimeoutError:
                    self.stats.counters["ack_timeouts"] += 1
                    visitor.ack_waiters.pop(client_id, None)
                    why = "ack_timeout"
                except ConnectionClosed:
                    why = "reconnect"
                except RuntimeError as exc:
                    if str(exc) == "closed":
                        why = "reconnect"
                    else:
                        await asyncio.sleep(ERROR_RETRY)
            next_at = max(next_at + interval * self.rng.uniform(0.9, 1.1), time.perf_counter())

    async def settle(self, deadline: float) -> None:
        """Wait for outstanding replies and reconnections, until `deadline`; then the check."""
        while time.perf_counter() < deadline:
            if not self.coming_back and not any(v.pending_reply or v.ack_waiters for v in self.visitors):
                break
            await asyncio.sleep(0.25)
        self.running = False

    async def run(self, sync: Any) -> dict[str, Any]:
        result = await super().run(sync)
        result["faults"] = {
            "reconnect_ms": percentiles(self.reconnect_times),
            **dict(self.faults),
        }
        return result


async def _close_quietly(ws: Any) -> None:
    try:
        await asyncio.wait_for(ws.close(), 2)
    except Exception:  # already gone
        return


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    targets: list[Target] = parse_targets(args)
    fd_limit = raise_fd_limit(args.connections + 256)
    loop_name = _install_loop()

    async def one_run() -> dict[str, Any]:
        shard = FaultShard(args, list(range(args.connections)), targets)
        try:
            return await asyncio.wait_for(shard.run(None), args.max_seconds)
        finally:
            await shard.close_all()

    aborted = False
    try:
        part = asyncio.run(one_run())
    except TimeoutError:
        part, aborted = {"failed": "over --max-seconds"}, True
    raw = merge([part])
    raw["aborted"] = aborted
    result = report(args, raw, loop_name, fd_limit)
    result["faults"] = part.get("faults", {})
    return write_report(args, result)


if __name__ == "__main__":
    sys.exit(main())
