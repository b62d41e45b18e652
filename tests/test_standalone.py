"""Readers copy single modules: each of these must import on its own."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tripletutils"
STANDALONE = [
    "data.py",
    "metrics.py",
    "verification.py",
    "clustering.py",
    "distributed.py",
    "sampling.py",
    "models.py",
    "losses.py",
    "evaluation.py",
    "training.py",
    "bench.py",
    "plotting.py",
    "runtime.py",
    "explore.py",
]


@pytest.mark.parametrize("module", STANDALONE)
def test_module_imports_alone(tmp_path, module):
    shutil.copy(PACKAGE / module, tmp_path / module)
    name = module[:-3]
    code = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import {name}; "
        "print(sorted(m for m in sys.modules if m.startswith('tripletutils')))"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
