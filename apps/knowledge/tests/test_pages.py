"""Knowledge pages as an admin uses them: create a base, add sources, watch status, edit an
FAQ, search in the playground."""

from __future__ import annotations

from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile

from apps.knowledge.models import KnowledgeBase, Source


def test_admin_builds_a_knowledge_base_in_the_dashboard(
    alpha: Any, login: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(alpha, alpha.owner_email)
    created = client.post("/dashboard/knowledge/", {"name": "Support", "embedding_model": "local-minilm"})
    assert created.status_code == 302
    kb = KnowledgeBase.objects.get(name="Support")
    page = f"/dashboard/knowledge/{kb.pk}/"
    with django_capture_on_commit_callbacks(execute=True):
        client.post(page, {"kind": "upload", "file": SimpleUploadedFile("hours.md", b"# Hours\n\nOpen 9 to 5.")})
        client.post(page, {"kind": "text", "title": "Parking", "text": "Free parking behind the building."})
        client.post(
            page,
            {
                "kind": "faq",
                "title": "FAQ",
                "entries": "Q: Do you deliver?\nA: Yes, citywide.\n\nQ: Pets allowed?\nA: Dogs only.",
            },
        )
    status = client.get(f"/dashboard/knowledge/{kb.pk}/status.json").json()["sources"]
    assert [(s["status"], s["progress"]) for s in status] == [("ready", 100)] * 3
    listing = client.get(page).content.decode()
    assert "hours.md" in listing and "Parking" in listing and 'value="100"' in listing
    bad = client.post(page, {"kind": "upload", "file": SimpleUploadedFile("x.exe", b"MZ")})
    assert bad.status_code == 415 and "Accepted" in bad.content.decode()

    faq = Source.objects.get(knowledge_base=kb, type="faq")
    edit = client.get(f"/dashboard/knowledge/{kb.pk}/sources/{faq.pk}/").content.decode()
    assert "Q: Do you deliver?" in edit
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            f"/dashboard/knowledge/{kb.pk}/sources/{faq.pk}/",
            {"title": "FAQ", "entries": "Q: Do you deliver?\nA: Only on weekdays."},
        )
    faq.refresh_from_db()
    assert faq.chunk_count == 1

    results = client.get(
        "/dashboard/knowledge/search/",
        {"query": "when do you deliver", "knowledge_bases": [kb.pk], "mode": "hybrid", "top_k": 5},
    ).content.decode()
    assert "Only on weekdays" in results and "similarity" in results

    client.post(f"/dashboard/knowledge/{kb.pk}/sources/{faq.pk}/action/", {"action": "delete"})
    assert not Source.objects.filter(pk=faq.pk).exists()


def test_viewers_see_but_cannot_change_knowledge(alpha: Any, make_member: Any, login: Any) -> None:
    viewer, _ = make_member(alpha, "viewer")
    client = login(alpha, viewer.email)
    kb = KnowledgeBase.objects.first()
    assert kb is not None
    assert client.get(f"/dashboard/knowledge/{kb.pk}/").status_code == 200
    assert client.post(f"/dashboard/knowledge/{kb.pk}/", {"kind": "text", "title": "x", "text": "y"}).status_code == 403
    assert client.post("/dashboard/knowledge/", {"name": "Nope"}).status_code == 403
    assert not KnowledgeBase.objects.filter(name="Nope").exists()
