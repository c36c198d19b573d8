"""Fixtures for the workspace lifecycle (deletion, export): a workspace made to be deleted,
created fresh for each test inside its transaction, with a row, file or key in every place its
deletion must reach. Loaded for every test module by the root conftest (`pytest_plugins`)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import schema_context, tenant_context

from tests.support import PASSWORD


@dataclass
class Doomed:
    tenant: Any
    slug: str
    schema: str
    host: str
    owner: Any
    api_key: str
    widget_key: str
    visitor_token: str
    conversation_id: int
    source_id: int
    file_name: str


@pytest.fixture
def media(settings: Any, tmp_path: Any) -> Any:
    """Uploads and exports go to a directory of this test's own."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def make_workspace(slug_prefix: str = "doomed") -> Doomed:
    """Sign a company up and give it data everywhere: knowledge (a text and an uploaded file,
    ingested), an agent, a contact with memory, a lead, an inbox with a conversation, an API key,
    an invitation, a cache entry, a presence mark and a channel group."""
    from apps.accounts.models import Role
    from apps.accounts.services import Actor, api_key_create, invitation_create, signup_company
    from apps.agents.services import agent_create
    from apps.conversations import services as conversations
    from apps.crm.services import contact_create, contact_memory_set, lead_capture
    from apps.knowledge import services as knowledge
    from apps.routing import presence
    from syntera.realtime import staff_group

    slug = f"{slug_prefix}-{secrets.token_hex(3)}"
    result = signup_company(company_name=f"{slug} Co", slug=slug, email=f"owner@{slug}.example", password=PASSWORD)
    tenant = result.tenant
    actor = Actor(tenant=tenant, role=Role.OWNER, user=result.user, label=result.user.email)
    _key, raw = api_key_create(actor=actor, name=f"{slug} key")
    invitation_create(actor=actor, email=f"invitee@{slug}.example", role=Role.AGENT)
    with tenant_context(tenant):
        kb = knowledge.knowledge_base_create(editor=actor, name=f"{slug} help centre")
        text = knowledge.source_add_text(
            editor=actor, kb=kb, title="Returns", text=f"# Returns\n\nReturns take 30 days at {slug}."
        )
        text.refresh_from_db()
        knowledge.ingest_source(source_id=text.pk, run=text.run)
        upload = SimpleUploadedFile("guide.txt", f"The {slug} guide says: shipping is free.".encode(), "text/plain")
        file_source = knowledge.source_add_file(editor=actor, kb=kb, upload=upload)
        file_source.refresh_from_db()
        knowledge.ingest_source(source_id=file_source.pk, run=file_source.run)
        agent = agent_create(editor=actor, name=f"{slug} agent", instructions=f"{slug} instructions")
        contact = contact_create(actor=actor, name=f"{slug} contact", email=f"contact@{slug}.example")
        contact_memory_set(actor=actor, contact=contact, key="note", value=f"{slug} memory")
        lead_capture(tenant=tenant, contact=contact, need=f"{slug} need", origin="staff", actor=actor)
        inbox = conversations.inbox_create(actor=actor, name=f"{slug} inbox", agent_id=agent.pk)
        conversation, token = conversations.conversation_start(inbox=inbox, contact=contact)
        conversations.message_post(
            conversation_id=conversation.pk, role="agent", text=f"{slug} transcript line", actor=actor
        )
        cache.set("deletion-canary", slug)
    with schema_context("public"):
        presence.set_status(tenant.schema_name, result.user.pk, "online")
    async_to_sync(get_channel_layer().group_add)(staff_group(tenant.schema_name), "specific.deletioncanary!1")
    return Doomed(
        tenant=tenant,
        slug=slug,
        schema=tenant.schema_name,
        host=f"{slug}.localhost",
        owner=result.user,
        api_key=raw,
        widget_key=inbox.widget_key,
        visitor_token=token,
        conversation_id=conversation.pk,
        source_id=text.pk,
        file_name=str(file_source.file.name),
    )


@pytest.fixture
def doomed(db: None, media: Any) -> Doomed:
    return make_workspace()


class Sockets:
    """Open the widget and staff WebSockets in-process and report how they end."""

    def widget(self, host: str, key: str) -> int | None:
        """The close code the widget socket gets, or None when it answers `hello`."""
        return self._run(host, f"/ws/widget/?key={key}", [(b"origin", f"http://{host}".encode())], widget=True)

    def staff(self, host: str, client: Any) -> int | None:
        """The close code of a staff socket opened with `client`'s session, or None when it says hello."""
        cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
        return self._run(host, "/ws/staff/", [(b"origin", f"http://{host}".encode()), (b"cookie", cookie)])

    def _run(self, host: str, path: str, headers: list[tuple[bytes, bytes]], widget: bool = False) -> int | None:
        from django.db import connection

        schema = connection.schema_name
        result: list[int | None] = []

        async def scenario() -> None:
            from channels.testing import WebsocketCommunicator

            from syntera.asgi import application

            comm = WebsocketCommunicator(application, path, headers=[(b"host", host.encode()), *headers])
            connected, _ = await comm.connect()
            assert connected
            if widget:
                await comm.send_json_to({"type": "hello"})
            frame = await comm.receive_output(timeout=3)
            if frame["type"] == "websocket.close":
                result.append(int(frame["code"]))
            else:
                result.append(None)
                await comm.disconnect()

        async_to_sync(scenario)()
        connection.set_schema(schema)
        return result[0]


@pytest.fixture
def sockets(monkeypatch: Any) -> Sockets:
    # The consumers' database work runs on the test's connection, inside its transaction.
    monkeypatch.setattr("channels.db.close_old_connections", lambda: None)
    return Sockets()


@pytest.fixture
def operator(client_for: Any) -> Any:
    """A platform operator logged in to the public admin."""
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_superuser(email="ops@syntera.example", password=PASSWORD)
    client = client_for("localhost")
    assert client.login(email="ops@syntera.example", password=PASSWORD)
    return client


def session_for(client_for: Any, host: str, email: str) -> Any:
    """A test client logged in on `host` through the real login form."""
    client = client_for(host)
    response = client.post("/login/", {"email": email, "password": PASSWORD})
    assert response.status_code == 302, response.content[:300]
    return client


def jwt_on(api_for: Any, host: str, email: str) -> str:
    response = api_for(host).post("/api/v1/auth/token/", {"email": email, "password": PASSWORD}, format="json")
    assert response.status_code == 200, response.content
    return str(response.json()["access"])
