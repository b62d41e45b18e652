"""``python -OO`` strips docstrings: the package must import and its commands start."""

import subprocess
import sys

import pytest

MODULES = (
    "tripletutils.experiments",
    "tripletutils.training",
    "tripletutils.losses",
    "tripletutils.engine",
    "tripletutils.bench",
    "tripletutils.search",
    "tripletutils.search_bench",
    "tripletutils.step_profile",
    "tripletutils.ledger",
)


def _run(*args):
    return subprocess.run(
        [sys.executable, "-OO", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module", autouse=True)
def _tensorflow_imports_under_oo():
    """TensorFlow 2.16 itself fails under -OO (its ``all_util`` reads docstrings):
    there, nothing of ours can be checked."""
    out = _run("-c", "import tensorflow")
    if out.returncode != 0:
        pytest.skip("this TensorFlow does not import under python -OO by itself")


@pytest.mark.slow
def test_the_package_imports_without_docstrings():
    out = _run("-c", f"import {', '.join(MODULES)}; print('imported')")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("imported")


@pytest.mark.slow
@pytest.mark.parametrize("module", ["engine", "bench", "search_bench", "step_profile"])
def test_the_commands_print_their_help_without_docstrings(module):
    out = _run("-m", f"tripletutils.{module}", "--help")
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"python -m tripletutils.{module}" in out.stdout
