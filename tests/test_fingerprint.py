"""Fingerprints: docstrings and comments change nothing, code and data do."""

import os
from pathlib import Path

import numpy as np
import pytest

from tripletutils import fingerprint as fingerprint_module
from tripletutils.fingerprint import (
    TRAINING_MODULES,
    code_fingerprint,
    data_fingerprint,
    definitions_fingerprint,
    source_fingerprint,
)

MODULE = '''"""A module."""

MARGIN = 0.2  # a comment


def loss(d):
    """The loss."""
    return max(0.0, d + MARGIN)


class Net:
    """A class."""

    def call(self, x):
        """Call."""
        return x
'''


def test_source_fingerprint_ignores_docstrings_comments_and_layout():
    base = source_fingerprint(MODULE)
    edited = MODULE.replace('"""The loss."""', '"""The hinge, explained at length."""')
    edited = edited.replace("# a comment", "# another comment entirely")
    edited = edited.replace('"""A module."""', "")
    edited = edited.replace("return max(0.0, d + MARGIN)", "return max(0.0,  d+MARGIN)")
    assert source_fingerprint(edited) == base
    assert source_fingerprint(MODULE.replace('"""Call."""\n', "")) == base


@pytest.mark.parametrize(
    "old, new",
    [
        ("MARGIN = 0.2", "MARGIN = 0.3"),  # a constant
        ("max(0.0, d + MARGIN)", "max(0.0, d - MARGIN)"),  # an operator
        ("return x", "return -x"),
        ("def loss(d)", "def loss(e)"),
    ],
)
def test_source_fingerprint_sees_every_code_change(old, new):
    assert source_fingerprint(MODULE.replace(old, new)) != source_fingerprint(MODULE)


def test_source_fingerprint_rejects_bad_input():
    with pytest.raises(TypeError, match="source must be a str"):
        source_fingerprint(b"x = 1")
    with pytest.raises(ValueError, match="not valid Python"):
        source_fingerprint("def f(:\n")


def test_code_fingerprint_covers_the_training_modules(tmp_path):
    for name in ("callbacks.py", "monitor.py", "runtime.py", "losses.py"):
        assert name in TRAINING_MODULES
    for name in ("a.py", "b.py"):
        (tmp_path / name).write_text(MODULE)
    base = code_fingerprint(["a.py", "b.py"], tmp_path)
    assert code_fingerprint(["b.py", "a.py"], tmp_path) == base  # order-free
    (tmp_path / "b.py").write_text(MODULE.replace('"""Call."""', '"""Calls."""'))
    assert code_fingerprint(["a.py", "b.py"], tmp_path) == base
    (tmp_path / "b.py").write_text(MODULE.replace("0.2", "0.25"))
    assert code_fingerprint(["a.py", "b.py"], tmp_path) != base
    assert len(code_fingerprint()) == 16  # the package's own modules parse


def test_code_fingerprint_rejects_bad_input(tmp_path):
    with pytest.raises(TypeError, match="sequence of str"):
        code_fingerprint("a.py", tmp_path)
    with pytest.raises(ValueError, match="empty"):
        code_fingerprint([], tmp_path)
    with pytest.raises(FileNotFoundError, match="missing.py"):
        code_fingerprint(["missing.py"], tmp_path)


def test_data_fingerprint_sees_every_byte_shape_and_dtype():
    x = np.zeros((200, 28, 28, 1), np.float32)
    y = np.arange(200) % 4
    base = data_fingerprint(x, y)
    x2 = x.copy()
    x2[5, 3, 3, 0] = 1e-6  # one pixel of one image that a sample of rows would skip
    assert data_fingerprint(x2, y) != base
    assert data_fingerprint(x, y) == base
    assert data_fingerprint(x.reshape(200, 784), y) != base
    assert data_fingerprint(x.astype(np.float64), y) != base
    assert data_fingerprint(x, y, salt="subset") != base


def test_data_fingerprint_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        data_fingerprint()
    with pytest.raises(TypeError, match="numpy arrays"):
        data_fingerprint([1, 2])
    with pytest.raises(ValueError, match="object"):
        data_fingerprint(np.array([None]))
    with pytest.raises(TypeError, match="salt"):
        data_fingerprint(np.zeros(2), salt=1)


def _other_pythons():
    """Interpreters of other minor versions on this machine (pyenv's, PATH's)."""
    import glob
    import shutil
    import sys

    found = {}
    for path in sorted(
        glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[1-4]*/bin/python3"))
    ):
        found.setdefault(Path(path).parents[1].name[:4], path)
    for name in ("python3.11", "python3.12", "python3.13"):
        if shutil.which(name):
            found.setdefault(name[6:], shutil.which(name))
    mine = f"{sys.version_info.major}.{sys.version_info.minor}"
    return {v: p for v, p in found.items() if v != mine}


def test_code_fingerprint_is_the_same_on_every_python_version():
    """Records made on Python 3.11 must stay fresh on 3.13 (Colab) and back."""
    import subprocess

    others = _other_pythons()
    if not others:
        pytest.skip("no other Python version on this machine")
    package = Path(fingerprint_module.__file__).resolve().parent
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import fingerprint as f; "
        "print(f.code_fingerprint(folder=sys.argv[1]))"
    )
    mine = code_fingerprint()
    for version, python in others.items():
        out = subprocess.run(
            [python, "-c", script, str(package)], capture_output=True, text=True
        )
        if out.returncode != 0 and "No module" in out.stderr:
            continue  # an interpreter without the standard library bits we need
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == mine, version


def test_training_modules_list_every_module_a_run_imports():
    """A module that training or the experiments import is in the fingerprint."""
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, tripletutils.experiments, tripletutils.recipes; "
            "print(' '.join(m for m in sys.modules if m.startswith('tripletutils.')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = {m.split(".", 1)[1] + ".py" for m in out.stdout.split()}
    assert imported - {"fingerprint.py"} <= set(TRAINING_MODULES), imported


DEFINITIONS = """\"\"\"Two experiments.\"\"\"
import math
from typing import Dict

SCALE = 2.0
OTHER = 3.0


def _helper(x):
    return math.sqrt(x) * SCALE


def run_a(x) -> Dict:
    \"\"\"A's run.\"\"\"
    return {"a": _helper(x)}


def run_b(x):
    return {"b": x * OTHER}
"""


def test_definitions_fingerprint_follows_what_an_entry_point_needs():
    base = definitions_fingerprint(DEFINITIONS, ["run_a"])
    assert len(base) == 16 and base != definitions_fingerprint(DEFINITIONS, ["run_b"])
    same = [
        DEFINITIONS + "\n\ndef run_c():\n    return 1\n",  # a new neighbour
        DEFINITIONS.replace("x * OTHER", "x * OTHER + 1"),  # a changed neighbour
        DEFINITIONS.replace("OTHER = 3.0", "OTHER = 4.0"),  # what only B needs
        DEFINITIONS.replace('"""A\'s run."""', '"""Run A."""'),  # a docstring
    ]
    for source in same:
        assert definitions_fingerprint(source, ["run_a"]) == base
    changed = [
        DEFINITIONS.replace("SCALE = 2.0", "SCALE = 2.5"),  # through _helper
        DEFINITIONS.replace("math.sqrt(x)", "math.exp(x)"),
        DEFINITIONS.replace("import math", "import cmath as math"),
        DEFINITIONS + "\nSCALE = 1.0\n",  # rebinds a needed name
        DEFINITIONS + "\nif SCALE:\n    print('imported')\n",  # runs on import
    ]
    for source in changed:
        assert definitions_fingerprint(source, ["run_a"]) != base
    both = definitions_fingerprint(DEFINITIONS, ["run_a", "run_b"])
    assert both == definitions_fingerprint(DEFINITIONS, ["run_b", "run_a"])
    assert both not in (base, definitions_fingerprint(DEFINITIONS, ["run_b"]))


def test_definitions_fingerprint_rejects_bad_input():
    with pytest.raises(TypeError):
        definitions_fingerprint(b"x = 1", ["x"])
    with pytest.raises(TypeError):
        definitions_fingerprint(DEFINITIONS, "run_a")
    with pytest.raises(ValueError, match="empty"):
        definitions_fingerprint(DEFINITIONS, [])
    with pytest.raises(ValueError, match="run_z"):
        definitions_fingerprint(DEFINITIONS, ["run_a", "run_z"])
    with pytest.raises(ValueError, match="not valid Python"):
        definitions_fingerprint("def (:", ["x"])


def test_code_fingerprint_with_entry_points(tmp_path):
    (tmp_path / "other.py").write_text("X = 1\n")
    (tmp_path / "exp.py").write_text(DEFINITIONS)
    modules = ["other.py", "exp.py"]
    whole = code_fingerprint(modules, tmp_path)
    a = code_fingerprint(modules, tmp_path, entry_points={"exp.py": ["run_a"]})
    assert a != whole
    (tmp_path / "exp.py").write_text(DEFINITIONS.replace("OTHER = 3.0", "OTHER = 5"))
    assert code_fingerprint(modules, tmp_path, entry_points={"exp.py": ["run_a"]}) == a
    assert code_fingerprint(modules, tmp_path) != whole
    (tmp_path / "other.py").write_text("X = 2\n")  # whole modules still count
    assert code_fingerprint(modules, tmp_path, entry_points={"exp.py": ["run_a"]}) != a
    with pytest.raises(ValueError, match="not in modules"):
        code_fingerprint(modules, tmp_path, entry_points={"third.py": ["f"]})
    with pytest.raises(TypeError):
        code_fingerprint(modules, tmp_path, entry_points=[("exp.py", ["run_a"])])
