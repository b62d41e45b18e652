"""The GitHub workflows call the Makefile, pin their actions and ask for little.

actionlint and zizmor check the workflows in ``make lint``; these tests check what
they cannot know: that every ``make`` target a workflow runs exists in this
repository's Makefile.
"""

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def make_targets(workflow_text: str) -> list[str]:
    """The targets of every ``make`` command in the workflow's ``run`` steps."""
    workflow = yaml.safe_load(workflow_text)
    targets = []
    for job in workflow["jobs"].values():
        for step in job.get("steps", []):
            for line in str(step.get("run", "")).splitlines():
                match = re.match(r"\s*make\s+(.*)", line)
                if match:
                    words = match.group(1).split()
                    targets += [
                        w for w in words if not w.startswith("-") and "=" not in w
                    ]
    return targets


def missing_targets(targets: list[str]) -> list[str]:
    """The targets for which the Makefile has no rule (``make -n`` says so)."""
    missing = []
    for target in targets:
        proc = subprocess.run(
            ["make", "-n", "-C", str(ROOT), target],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if proc.returncode != 0 and "No rule to make target" in proc.stderr:
            missing.append(target)
    return missing


def test_there_are_two_workflows():
    assert {w.name for w in WORKFLOWS} == {"pages.yml", "test.yml"}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_make_targets_exist(workflow):
    targets = make_targets(workflow.read_text())
    assert targets, f"{workflow.name} runs no make target"
    assert missing_targets(targets) == [], f"{workflow.name} calls missing targets"


def test_a_missing_target_is_caught():
    text = (
        "jobs:\n  j:\n    steps:\n      - run: make html\n      - run: make htlm V=1\n"
    )
    assert make_targets(text) == ["html", "htlm"]
    assert missing_targets(make_targets(text)) == ["htlm"]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_to_commits(workflow):
    uses = re.findall(r"uses:\s*(\S+)", workflow.read_text())
    assert uses
    for action in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", action), action


def test_pages_workflow_builds_from_committed_outputs_and_deploys():
    workflow = yaml.safe_load((ROOT / ".github/workflows/pages.yml").read_text())
    assert workflow["permissions"] == {}
    build, deploy = workflow["jobs"]["build"], workflow["jobs"]["deploy"]
    assert build["permissions"] == {"contents": "read"}
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    runs = [step.get("run") for step in build["steps"]]
    assert "make html" in runs
    uploads = [
        s for s in build["steps"] if "upload-pages-artifact" in s.get("uses", "")
    ]
    assert uploads[0]["with"]["path"] == "_build/html"


def python_range() -> tuple[str, str]:
    """The oldest and newest Python minor versions ``requires-python`` allows."""
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "requires-python"
    ]
    low = re.search(r">=\s*3\.(\d+)", spec)
    high = re.search(r"<\s*3\.(\d+)", spec)
    assert low and high, f"requires-python {spec!r}: expected >=3.X,<3.Y"
    return f"3.{low.group(1)}", f"3.{int(high.group(1)) - 1}"


def ci_run_targets() -> list[str]:
    """The ``make`` targets ``.ci/run`` runs, in order (``make browser`` aside:
    the workflow uses the runner's own Chrome, as ``make browser`` needs root)."""
    text = "\n".join(
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if not line.lstrip().startswith("#")
    )
    return [
        t
        for t in make_targets(
            yaml.safe_dump({"jobs": {"j": {"steps": [{"run": text}]}}})
        )
        if t != "browser"
    ]


def jobs_by_python() -> dict[str, dict]:
    workflow = yaml.safe_load((ROOT / ".github/workflows/test.yml").read_text())
    jobs = {}
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            if "setup-python" in step.get("uses", ""):
                jobs[str(step["with"]["python-version"])] = job
    return jobs


def test_ci_runs_the_oldest_and_newest_python():
    assert sorted(jobs_by_python()) == sorted(python_range())


def test_oldest_python_job_runs_what_ci_run_runs():
    """CI on GitHub = CI here: the same make targets as ``.ci/run``, same order."""
    oldest, _ = python_range()
    job = jobs_by_python()[oldest]
    targets = make_targets(yaml.safe_dump({"jobs": {"j": job}}))
    assert ci_run_targets(), ".ci/run runs no make target"
    assert targets == ci_run_targets(), (
        f"test.yml's Python {oldest} job runs {targets}, .ci/run runs "
        f"{ci_run_targets()}: add the missing steps to .github/workflows/test.yml"
    )


def test_newest_python_job_installs_the_package_and_runs_the_unit_tests():
    _, newest = python_range()
    runs = "\n".join(
        str(step.get("run", "")) for step in jobs_by_python()[newest]["steps"]
    )
    assert f"python{newest} -m venv" in runs and 'pip" install' in runs
    assert "import tripletutils.training" in runs
    assert f"make unit-all PYTHON=python{newest}" in runs
