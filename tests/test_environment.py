"""pyproject.toml and environment.yml must name the same packages and pins."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return (
        re.split(r"[<>=!~;\[ ]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")
    )


def pyproject_requirements():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(data["dependencies"])
    for extra in data["optional-dependencies"].values():
        reqs += extra
    return {_name(r): r.replace(" ", "") for r in reqs}


def environment_requirements():
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, l in enumerate(lines) if l.strip() == "- pip:")
    reqs = []
    for line in lines[start + 1 :]:
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if not s.startswith("- "):
            break
        reqs.append(s[2:].strip())
    return {_name(r): r.replace(" ", "") for r in reqs if not r.startswith("-e")}


def test_same_packages():
    assert sorted(pyproject_requirements()) == sorted(environment_requirements())


def test_same_pins():
    assert pyproject_requirements() == environment_requirements()


def test_every_dependency_has_floor_and_ceiling():
    for name, req in pyproject_requirements().items():
        assert ">=" in req and "<" in req.replace("<=", ""), (
            f"{name}: {req} needs a floor and a ceiling"
        )


def test_environment_installs_the_package_itself():
    assert "- -e ." in (ROOT / "environment.yml").read_text()
