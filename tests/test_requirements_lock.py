"""requirements.lock pins every package the project asks for, at a version its range admits:
a requirement added or narrowed without `make lock` fails here, not at someone else's install."""

from __future__ import annotations

from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def _lines(name: str) -> list[str]:
    lines = []
    for raw in (ROOT / name).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            lines.append(line)
    return lines


def test_every_requirement_is_pinned_within_its_range() -> None:
    pinned = {}
    for line in _lines("requirements.lock"):
        requirement = Requirement(line)
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"not an exact pin: {line}"
        pinned[canonicalize_name(requirement.name)] = spec.version
    files = sorted(path.name for path in ROOT.glob("requirements*.txt"))
    assert {"requirements.txt", "requirements-models.txt", "requirements-torch.txt", "requirements-dev.txt"} <= set(
        files
    )
    for name in files:
        for line in _lines(name):
            requirement = Requirement(line)
            version = pinned.get(canonicalize_name(requirement.name))
            assert version is not None, f"{requirement.name} ({name}) is not in requirements.lock: run `make lock`"
            assert requirement.specifier.contains(version, prereleases=True), (
                f"requirements.lock pins {requirement.name}=={version}, outside {requirement.specifier} ({name})"
            )
