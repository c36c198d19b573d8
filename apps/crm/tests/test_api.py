"""Contacts, their AI memory and leads through the API: staff see, edit and erase what the AI
remembers; viewers only read; another tenant's contacts are out of reach."""

from __future__ import annotations

from typing import Any


def test_contact_crud_and_memory(alpha: Any, api_for: Any) -> None:
    api = api_for(alpha.host, alpha.api_key)
    response = api.post("/api/v1/contacts/", {"name": "Jane Doe", "email": "jane@example.com"}, format="json")
    assert response.status_code == 201, response.content
    contact = response.json()
    assert {f["key"]: f["source"] for f in contact["memory"]} == {"name": "staff", "email": "staff"}

    memory_url = f"/api/v1/contacts/{contact['id']}/memory"
    assert api.put(memory_url, {"key": "preference", "value": "email, not phone"}, format="json").status_code == 200
    assert api.put(memory_url, {"key": "company", "value": "Globex"}, format="json").status_code == 200
    facts = api.get(memory_url).json()
    assert {f["key"] for f in facts} == {"name", "email", "preference", "company"}
    assert api.get(f"/api/v1/contacts/{contact['id']}/").json()["company"] == "Globex"

    assert api.delete(f"{memory_url}?key=company").status_code == 204
    after = api.get(f"/api/v1/contacts/{contact['id']}/").json()
    assert after["company"] == "" and "company" not in {f["key"] for f in after["memory"]}
    assert api.delete(memory_url).status_code == 204
    erased = api.get(f"/api/v1/contacts/{contact['id']}/").json()
    assert erased["memory"] == [] and erased["name"] == "" and erased["email"] == ""

    found = api.get("/api/v1/contacts/?search=jane").json()
    assert found["count"] == 0  # erased means forgotten, in search too
    assert api.patch(f"/api/v1/contacts/{contact['id']}/", {"name": "J. Doe"}, format="json").json()["name"] == "J. Doe"
    assert api.delete(f"/api/v1/contacts/{contact['id']}/").status_code == 204


def test_bad_memory_and_contact_input(alpha: Any, api_for: Any) -> None:
    api = api_for(alpha.host, alpha.api_key)
    contact = api.post("/api/v1/contacts/", {"name": "Bob"}, format="json").json()
    url = f"/api/v1/contacts/{contact['id']}/memory"
    for body in ({"key": "password", "value": "x"}, {"key": "name", "value": ""}, {"key": "name", "value": "x" * 301}):
        response = api.put(url, body, format="json")
        assert response.status_code == 400 and response.json()["error"]["fields"], body
    assert api.delete(f"{url}?key=password").status_code == 400
    assert api.post("/api/v1/contacts/", {"email": "not-an-email"}, format="json").status_code == 400
    assert api.post("/api/v1/contacts/", {"phone": "call me maybe"}, format="json").status_code == 400
    assert api.get("/api/v1/contacts/999999/memory").status_code == 404
    # PostgreSQL cannot store U+0000: refused as a client error wherever it hides in the body.
    for attributes in ({"plan\x00": "gold"}, {"plan": "go\x00ld"}):
        response = api.patch(f"/api/v1/contacts/{contact['id']}/", {"attributes": attributes}, format="json")
        assert response.status_code == 400 and response.json()["error"]["code"] == "parse_error", attributes
    assert api.get(f"/api/v1/contacts/{contact['id']}/").json()["attributes"] == {}


def test_roles_and_isolation(alpha: Any, beta: Any, api_for: Any, make_member: Any, jwt_for: Any) -> None:
    api = api_for(alpha.host, alpha.api_key)
    contact = api.post("/api/v1/contacts/", {"name": "Canary Contact alpha"}, format="json").json()
    viewer, _ = make_member(alpha, "viewer")
    as_viewer = api_for(alpha.host, jwt_for(alpha, viewer.email))
    assert as_viewer.get(f"/api/v1/contacts/{contact['id']}/memory").status_code == 200
    assert (
        as_viewer.put(
            f"/api/v1/contacts/{contact['id']}/memory", {"key": "note", "value": "x"}, format="json"
        ).status_code
        == 403
    )
    staff, _ = make_member(alpha, "agent")
    as_staff = api_for(alpha.host, jwt_for(alpha, staff.email))
    assert (
        as_staff.put(
            f"/api/v1/contacts/{contact['id']}/memory", {"key": "note", "value": "VIP"}, format="json"
        ).status_code
        == 200
    )

    other = api_for(beta.host, beta.api_key)
    assert other.get(f"/api/v1/contacts/{contact['id']}/").status_code == 404
    assert other.delete(f"/api/v1/contacts/{contact['id']}/memory").status_code == 404
    assert "Canary Contact alpha" not in other.get("/api/v1/contacts/").content.decode()
    assert "Canary Contact alpha" not in other.get("/api/v1/leads/").content.decode()
