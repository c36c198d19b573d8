"""Schemathesis against `/api/schema/`: generated requests for every operation must never
produce a 5xx and every response must conform to the published schema (error shape included).

Runs in-process through the WSGI app on a tenant host with a full-scope API key; each
operation runs in its own rolled-back transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)


def _load_schema() -> Any:
    from drf_spectacular.generators import SchemaGenerator

    from syntera.wsgi import application

    document = SchemaGenerator().get_schema(request=None, public=True)
    loaded = schemathesis.openapi.from_dict(document)
    loaded.app = application  # requests go through the real WSGI stack, in-process
    return loaded


schema = _load_schema()


@pytest.fixture
def no_connection_recycling(settings: Any) -> Iterator[None]:
    """As Django's own test client does: per-request connection recycling would close the
    connection holding the test's transaction. Rate limits are off: volume is the point."""
    settings.RATELIMIT_ENABLE = False
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_conforms_to_its_schema(case: Any, alpha: Any, no_connection_recycling: None) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {alpha.api_key}", "Host": alpha.host},
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )


def test_schema_documents_the_error_shape_and_bearer_auth(client_for: Any) -> None:
    document = client_for("localhost").get("/api/schema/?format=json").json()
    assert document["openapi"].startswith("3.")
    assert "Error" in document["components"]["schemas"]
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    members = document["paths"]["/api/v1/members/"]["get"]["responses"]
    assert {"401", "403", "429"} <= set(members)


def test_docs_pages_load_their_assets_locally(client_for: Any) -> None:
    client = client_for("localhost")
    page = client.get("/api/docs/").content.decode()
    assert "cdn" not in page.lower() and "/static/drf_spectacular_sidecar/" in page
    assert client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js").status_code == 200
    assert "<script>" not in page and "<style>" not in page  # the start-up script is a file (?script)
    redoc = client.get("/api/redoc/")  # one documentation page: ReDoc's address leads to it
    assert redoc.status_code == 301 and redoc["Location"] == "/api/docs/"
