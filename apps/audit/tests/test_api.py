"""Audit trail API: filters, and date-times PostgreSQL cannot store."""

from __future__ import annotations

from typing import Any


def test_audit_filters_by_action_and_time(alpha: Any, api_for: Any) -> None:
    client = api_for(alpha.host, alpha.api_key)
    events = client.get(f"/api/v1/audit-events/?action={alpha.canary_action}").json()
    assert [e["action"] for e in events["results"]] == [alpha.canary_action]
    assert client.get("/api/v1/audit-events/?since=2999-01-01T00:00:00Z").json()["count"] == 0


def test_out_of_range_date_times_are_400_not_500(alpha: Any, api_for: Any) -> None:
    client = api_for(alpha.host, alpha.api_key)
    # Python accepts a -17:47 offset, PostgreSQL does not: normalised to UTC first.
    assert client.get("/api/v1/audit-events/?until=0616-05-17T22:44:17-17:47").status_code == 200
    response = client.get("/api/v1/audit-events/?since=0001-01-01T00:00:00%2B15:00")
    assert response.status_code == 400 and "since" in response.json()["error"]["fields"]
    assert client.get("/api/v1/audit-events/?since=not-a-date").status_code == 400
