"""Delivering: in order per stream, at least once, marked done; a failing subscriber retried
with back-off while other conversations go on, then failed and visible to operators; one
dispatcher per workspace, kicked after commit without a task per event, swept by beat, and
delivered events purged after their retention."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from apps.events import dispatch, services, tasks
from apps.events import types as events
from apps.events.models import OutboxEvent
from apps.events.services import emit

from . import subscribers


def _rating(conversation_id: int, comment: str = "") -> events.Event:
    return events.csat_received(conversation_id=conversation_id, rating=5, comment=comment)


def _row(comment: str) -> OutboxEvent:
    return OutboxEvent.objects.get(type="csat.received", data__comment=comment)


def _due_now() -> None:
    """The back-offs end (time moves on)."""
    OutboxEvent.objects.filter(state="pending").update(available_at=timezone.now() - timedelta(seconds=1))


def _command(*args: str) -> str:
    out = io.StringIO()
    call_command("events", *args, stdout=out)
    return out.getvalue()


def test_delivers_in_order_once_and_marks_done(owner: Any, recorded: list[Any]) -> None:
    emit(_rating(1, "a1"), _rating(2, "b1"), _rating(1, "a2"))
    emit(_rating(2, "b2"), actor=owner)
    report = dispatch.run()
    assert report.delivered == 4 and not report.busy and not report.more
    assert [d.data["comment"] for d in recorded] == ["a1", "b1", "a2", "b2"]
    assert recorded[-1].actor_user_id == owner.user.pk and recorded[-1].actor_label == owner.label
    assert recorded[0].actor_label == "system" and recorded[0].attempt == 1
    assert [d.id for d in subscribers.RECORDED] == [d.id for d in recorded]  # no retries, no duplicates
    assert set(
        OutboxEvent.objects.filter(data__comment__in=["a1", "a2", "b1", "b2"]).values_list("state", flat=True)
    ) == {"done"}
    assert all(r.finished_at for r in OutboxEvent.objects.filter(type="csat.received"))
    assert dispatch.run().delivered == 0  # nothing twice


def test_a_failing_subscriber_is_retried_and_holds_back_only_its_own_conversation(
    owner: Any, recorded: list[Any], settings: Any
) -> None:
    settings.EVENTS_RETRY_BASE_SECONDS = 2
    subscribers.FAILING.add(1)
    emit(_rating(1, "a1"), _rating(2, "b1"), _rating(1, "a2"), _rating(2, "b2"))
    report = dispatch.run()
    assert (report.delivered, report.retried, report.failed) == (2, 1, 0)
    # The other subscriber had its turn with a1 and keeps it; conversation 2 went on.
    assert [d.data["comment"] for d in recorded] == ["a1", "b1", "b2"]
    a1, a2 = _row("a1"), _row("a2")
    assert (a1.state, a1.attempts, a1.handled_by) == ("pending", 1, ["recorder"])
    assert "flaky: RuntimeError: flaky refuses conversation 1" in a1.last_error
    assert timedelta(seconds=1) < a1.available_at - timezone.now() <= timedelta(seconds=2)
    assert (a2.state, a2.attempts) == ("pending", 0)  # waits behind a1, untried
    # While a1 backs off nothing of conversation 1 is deliverable, and the dispatcher stops.
    assert dispatch.deliverable(10) == []
    assert dispatch.run().delivered == 0
    subscribers.FAILING.clear()
    _due_now()
    calls = len(subscribers.FLAKY_CALLS)
    assert dispatch.run().delivered == 2
    assert [d.data["comment"] for d in recorded] == ["a1", "b1", "b2", "a2"]  # a1 not recorded twice
    assert subscribers.FLAKY_CALLS[calls:] == [str(a1.uuid), str(a2.uuid)]  # in order
    assert {_row("a1").state, _row("a2").state} == {"done"}


def test_back_off_doubles_up_to_its_ceiling(settings: Any) -> None:
    settings.EVENTS_RETRY_BASE_SECONDS = 2
    settings.EVENTS_RETRY_MAX_SECONDS = 30
    assert [dispatch.backoff(n).total_seconds() for n in range(1, 7)] == [2, 4, 8, 16, 30, 30]


def test_after_the_last_attempt_an_event_is_failed_listed_and_can_be_retried(
    owner: Any, recorded: list[Any], settings: Any
) -> None:
    settings.EVENTS_MAX_ATTEMPTS = 2
    subscribers.FAIL_IF.append(lambda d: d.data.get("comment") in ("bad", "worse"))
    emit(_rating(5, "bad"), _rating(5, "after"), _rating(6, "worse"))
    dispatch.run()
    _due_now()
    report = dispatch.run()
    assert report.failed == 2
    bad = _row("bad")
    assert (bad.state, bad.attempts) == ("failed", 2) and bad.finished_at
    # The stream goes on past the failed event.
    assert _row("after").state == "done"
    listed = _command("failed", "--tenant", "alpha")
    assert str(bad.uuid) in listed and "csat.received" in listed and "conversation:5" in listed
    assert "flaky refuses conversation 5" in listed
    status = _command("status", "--tenant", "alpha")
    assert "2 failed" in status
    shown = _command("show", "--tenant", "alpha", str(bad.uuid))
    assert f'"id": "{bad.uuid}"' in shown and '"tenant": "alpha"' in shown and '"state": "failed"' in shown
    # Fixed: retried by id; the subscriber that had handled it is not called again.
    subscribers.FAIL_IF.clear()
    recorded.clear()
    assert "1 event(s) queued again" in _command("retry", "--tenant", "alpha", str(bad.uuid))
    assert dispatch.run().delivered == 1
    assert _row("bad").state == "done" and recorded == []
    worse = _row("worse")
    assert "1 failed event(s) dropped" in _command("drop", "--tenant", "alpha", str(worse.uuid))
    assert not OutboxEvent.objects.filter(pk=worse.pk).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("failed", "--tenant", "nowhere"), "No workspace 'nowhere'"),
        (("show", "--tenant", "alpha", "not-a-uuid"), "Not an event id"),
        (("show", "--tenant", "alpha", "0190a000-0000-7000-8000-000000000000"), "No event"),
        (("retry", "--tenant", "alpha"), "Name the events to retry, or give --all"),
        (("retry", "--tenant", "alpha", "--all", "0190a000-0000-7000-8000-000000000000"), "or give --all"),
        (("schema", "conversation.exploded"), "No event type"),
    ],
)
def test_the_command_refuses_bad_input_plainly(alpha: Any, args: tuple[str, ...], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        _command(*args)


def test_the_command_prints_a_types_schema_and_the_list() -> None:
    assert '"title": "message.created"' in _command("schema", "message.created")
    listed = _command("schema")
    assert "conversation.created\t" in listed and "knowledge.source.failed\t" in listed


def test_a_worker_dying_mid_batch_loses_nothing_and_the_id_stays(owner: Any, recorded: list[Any]) -> None:
    """A crash before the batch commits: nothing is marked done, the next run delivers every
    event again with the same id (consumers de-duplicate by it)."""
    emit(_rating(9901, "x1"), events.handoff_requested(conversation_id=9901, reason="asked"), _rating(9901, "x2"))
    subscribers.CRASH_ON.add("handoff.requested")
    with pytest.raises(SystemExit):
        dispatch.run()
    assert set(OutboxEvent.objects.filter(data__conversation_id=9901).values_list("state", flat=True)) == {"pending"}
    assert recorded == []  # nothing was committed
    first = [d.id for d in subscribers.RECORDED]
    subscribers.CRASH_ON.clear()
    assert dispatch.run().delivered == 3
    assert [d.id for d in recorded][:2] == first  # the same events, the same ids, in order


def test_one_dispatcher_per_workspace(owner: Any, recorded: list[Any], beta: Any) -> None:
    emit(_rating(1, "locked"))
    other = connection.get_new_connection(connection.get_connection_params())
    try:
        key = "syntera.events.dispatch:alpha"
        other.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [key])
        report = dispatch.run()
        assert report.busy and report.delivered == 0 and recorded == []
        with schema_context(beta.schema):
            assert not dispatch.run().busy  # another workspace's lock is its own
        other.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [key])
    finally:
        other.close()
    assert dispatch.run().delivered == 1


def test_kicks_are_debounced_per_workspace_and_never_raise(monkeypatch: Any, settings: Any) -> None:
    """Not one task per event: a commit sends one at once, commits within the interval share
    one sent for its end, commits while that one is ahead need none."""
    settings.EVENTS_KICK_INTERVAL_MS = 200
    settings.CELERY_TASK_ALWAYS_EAGER = False
    sent: list[tuple[str, float | None]] = []
    monkeypatch.setattr(
        tasks.dispatch,
        "apply_async",
        lambda args, **options: sent.append((args[0], options.get("countdown"), options["queue"])),
    )
    clock = {"now": 1000.0}
    monkeypatch.setattr(services.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(services, "_kicks", {})
    monkeypatch.setattr(services, "_claim_kick", lambda schema, countdown: countdown)  # one process alone
    for at in (0.0, 0.05, 0.1, 0.19, 0.25, 0.3, 1.0):
        clock["now"] = 1000.0 + at
        services.dispatch_soon("alpha")
    services.dispatch_soon("beta")
    rounded = [(schema, None if c is None else round(c, 3), queue) for schema, c, queue in sent]
    assert rounded == [
        ("alpha", None, "events"),  # at 0: at once
        ("alpha", 0.15, "events"),  # at 0.05: one for the end of the interval (0.2)
        ("alpha", 0.15, "events"),  # at 0.25: the next interval's (0.4)
        ("alpha", None, "events"),  # at 1.0: quiet for long enough, at once again
        ("beta", None, "events"),
    ]

    def broken(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.dispatch, "apply_async", broken)
    clock["now"] += 10
    services.dispatch_soon("alpha")  # logged; the sweep will dispatch


def test_processes_agree_on_two_kicks_per_interval_through_redis(monkeypatch: Any, settings: Any) -> None:
    """Three processes (each with its own memory of what it sent) commit events for one
    workspace within one interval: one task goes at once, one for the interval's end, and the
    rest send none, since that last one starts after their commits. Once the interval is over,
    the next commit sends at once again; another workspace is not held back."""
    import time as real_time

    settings.EVENTS_KICK_INTERVAL_MS = 300
    settings.CELERY_TASK_ALWAYS_EAGER = False
    sent: list[tuple[str, float | None]] = []
    monkeypatch.setattr(
        tasks.dispatch, "apply_async", lambda args, **options: sent.append((args[0], options.get("countdown")))
    )
    for _ in range(3):  # three processes
        monkeypatch.setattr(services, "_kicks", {})
        services.dispatch_soon("alpha")
        services.dispatch_soon("alpha")
    assert sent == [("alpha", None), ("alpha", 0.3)]
    services.dispatch_soon("beta")
    assert sent[-1] == ("beta", None)
    real_time.sleep(0.35)
    monkeypatch.setattr(services, "_kicks", {})
    services.dispatch_soon("alpha")
    assert sent[-1] == ("alpha", None) and len(sent) == 4


def test_the_sweep_dispatches_where_events_wait(owner: Any, recorded: list[Any], beta: Any) -> None:
    assert tasks._schemas_with_work(["alpha", beta.schema]) == []
    emit(_rating(3, "swept"))
    assert tasks._schemas_with_work(["alpha", beta.schema]) == ["alpha"]
    assert tasks.sweep() == ["alpha"]  # (tasks run inline here: the dispatch delivers at once)
    connection.set_tenant(owner.tenant)
    assert _row("swept").state == "done" and [d.data["comment"] for d in recorded] == ["swept"]
    # An event waiting out a back-off holds back the one behind it, sweep or not.
    subscribers.FAILING.add(4)
    emit(_rating(4, "waits"), _rating(4, "behind"))
    dispatch.run()
    assert tasks.sweep() == ["alpha"]  # "behind" is due...
    connection.set_tenant(owner.tenant)
    assert _row("behind").state == "pending" and _row("behind").attempts == 0  # ...and still waits
    subscribers.FAILING.clear()
    _due_now()
    assert tasks.sweep() == ["alpha"]
    connection.set_tenant(owner.tenant)
    assert _row("waits").state == _row("behind").state == "done"


def test_the_dispatch_task_runs_in_the_workspace_it_names(owner: Any, recorded: list[Any], beta: Any) -> None:
    emit(_rating(7, "alpha's"))
    with schema_context(beta.schema):
        emit(_rating(7, "beta's"))
    assert tasks.dispatch(beta.schema)["delivered"] == 1
    assert [(d.event["tenant"], d.data["comment"]) for d in recorded] == [("beta", "beta's")]
    connection.set_tenant(owner.tenant)
    assert _row("alpha's").state == "pending"


def test_delivered_events_are_purged_after_their_retention(owner: Any, recorded: list[Any], settings: Any) -> None:
    settings.EVENTS_RETENTION_DAYS = 7
    settings.EVENTS_MAX_ATTEMPTS = 1
    subscribers.FAIL_IF.append(lambda d: d.data.get("comment") == "old failed")
    emit(_rating(1, "old done"), _rating(1, "recent done"), _rating(2, "old failed"))
    dispatch.run()
    emit(_rating(3, "old pending"))
    eight_days = timezone.now() - timedelta(days=8)
    OutboxEvent.objects.filter(data__comment__startswith="old").update(finished_at=eight_days, created_at=eight_days)
    assert tasks.purge() >= 1
    connection.set_tenant(owner.tenant)
    left = set(OutboxEvent.objects.filter(type="csat.received").values_list("data__comment", flat=True))
    assert left == {"recent done", "old failed", "old pending"}


@pytest.mark.parametrize(
    ("paths", "message"),
    [
        (["tests.events.subscribers.not_a_subscriber"], "is not an apps.events.dispatch.Subscriber"),
        (["tests.events.subscribers.unknown_type"], "unknown event types"),
        (
            ["tests.events.subscribers.recorder", "tests.events.subscribers.recorder_again"],
            "two subscribers are named 'recorder'",
        ),
    ],
)
def test_a_misconfigured_subscriber_list_is_refused(owner: Any, settings: Any, paths: list[str], message: str) -> None:
    settings.EVENTS_SUBSCRIBERS = paths
    with pytest.raises(ImproperlyConfigured, match=message):
        dispatch.run()
