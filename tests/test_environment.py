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
    # pip options (-e ., -c constraints.txt) are not requirements
    return {_name(r): r.replace(" ", "") for r in reqs if not r.startswith("-")}


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


def test_environment_and_make_setup_use_the_lock():
    assert "- -c constraints.txt" in (ROOT / "environment.yml").read_text()
    assert "-c constraints.txt" in (ROOT / "Makefile").read_text()


def test_lock_pins_every_requirement_exactly():
    lock = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not NAME==VERSION"
            lock[_name(name)] = version
    for name in pyproject_requirements():
        if name not in ("jupyterlab",):  # the `lab` extra is not in make setup
            assert name in lock, f"{name} is not pinned in constraints.txt"


def test_the_oldest_set_pins_every_dependency_at_its_floor():
    """`make test-oldest` installs the package's dependencies and the experiments
    and search extras; constraints-oldest.txt pins each at the release its floor
    names (a floor of 2.16 is met by 2.16.x), so the oldest set is tested whole."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = data["optional-dependencies"]
    reqs = list(data["dependencies"]) + extras["experiments"] + extras["search"]
    pins = {}
    for line in (ROOT / "constraints-oldest.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[_name(name)] = version.strip()
    for req in reqs:
        floor = re.search(r">=([\d.]+)", req).group(1)
        name = _name(req)
        assert name in pins, f"{name} has no pin in constraints-oldest.txt"
        pinned, wanted = pins[name].split("."), floor.split(".")
        assert pinned[: len(wanted)] == wanted, f"{name}: {pins[name]} for >={floor}"
