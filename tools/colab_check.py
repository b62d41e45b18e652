"""Run every chapter as a Colab reader would: alone, in an empty folder, on its stack.

``make colab`` builds ``.venv-colab`` (Python 3.13 with the packages of
``constraints-colab.txt``, Colab's default runtime) and runs this file with it.
For each chapter it

1. copies the notebook alone into an empty folder;
2. puts a stand-in ``google.colab`` module in the kernel's ``sys.modules`` at
   start (beside protobuf's ``google`` namespace), so the chapter's install cell
   takes its Colab branch;
3. points that cell at this checkout instead of GitHub (``REPO`` becomes
   ``file://<this repository>``: pip installs ``tripletutils @ git+file://...``,
   the committed ``HEAD``), after uninstalling any earlier ``tripletutils``;
4. executes the whole notebook and measures its seconds and the peak memory of
   the kernel and every process it starts (summed, sampled every 0.2 s).

It prints one line per chapter (name, seconds, peak memory, pass or the error)
and exits 1 if any chapter fails. The install cell's own check (TensorFlow's
version unchanged) fails a chapter whose install would replace Colab's
TensorFlow, as it would stop a reader.

Usage, with the Colab environment's Python, from the repository root::

    .venv-colab/bin/python tools/colab_check.py [NOTEBOOK ...]

Needs nbclient, nbformat, ipykernel and psutil (Colab has them all).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
REPO_LINE = re.compile(r'^REPO = "[^"]*"$', re.M)
#: Run at kernel start: a stand-in ``google.colab`` module (the chapters test for
#: its presence), added beside the real ``google`` namespace (protobuf's), not over
#: it.
STARTUP = """import sys, types

try:
    import google
except ImportError:
    google = sys.modules["google"] = types.ModuleType("google")
colab = types.ModuleType("google.colab")
colab.__doc__ = "A stand-in for Colab's module, made by tools/colab_check.py."
sys.modules["google.colab"] = google.colab = colab
"""


def colab_python_version(path: Path = ROOT / "constraints-colab.txt") -> str:
    """The Python version ``constraints-colab.txt`` records for Colab.

    Parameters
    ----------
    path : Path
        The constraints file.

    Returns
    -------
    str
        E.g. ``"3.13.15"``.

    Raises
    ------
    ValueError
        If the file has no ``python_version==`` line.
    """
    found = re.search(r"^python_version==(\S+)$", Path(path).read_text(), re.M)
    if found is None:
        raise ValueError(f"{path}: no python_version== line")
    return found.group(1)


def colab_packages(path: Path = ROOT / "constraints-colab.txt") -> Dict[str, str]:
    """The pinned packages of ``constraints-colab.txt``: ``{name: version}``."""
    pins = {}
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("python_version"):
            continue
        name, sep, version = line.partition("==")
        if not sep:
            raise ValueError(f"{path}: not an exact pin: {line!r}")
        pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def for_colab(notebook: Dict, repository: str) -> Dict:
    """A copy of a chapter whose install cell installs from ``repository``.

    Parameters
    ----------
    notebook : dict
        The chapter as JSON.
    repository : str
        What ``REPO`` becomes, e.g. ``"file:///home/me/triplet-loss-book"``.

    Returns
    -------
    dict
        The notebook with every code cell's outputs cleared.

    Raises
    ------
    ValueError
        If no code cell sets ``REPO = "..."`` and installs with ``%pip``.
    """
    copy = json.loads(json.dumps(notebook))
    found = False
    for cell in copy["cells"]:
        if cell["cell_type"] != "code":
            continue
        cell["outputs"], cell["execution_count"] = [], None
        source = "".join(cell["source"])
        if REPO_LINE.search(source) and "%pip install" in source:
            source = REPO_LINE.sub(f'REPO = "{repository}"', source)
            cell["source"] = source
            found = True
    if not found:
        raise ValueError('no install cell (REPO = "..." and %pip install) found')
    return copy


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc] + proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run_chapter(path: Path, timeout: int = 1800) -> Dict[str, object]:
    """Run one chapter alone in an empty folder; its seconds, peak bytes, error."""
    import nbformat
    from nbclient import NotebookClient

    path = Path(path).resolve()
    subprocess.run(
        [sys.executable, "-m", "pip", "uninstall", "--quiet", "--yes", "tripletutils"],
        check=False,
        capture_output=True,
    )
    with tempfile.TemporaryDirectory(prefix="colab-") as tmp:
        tmp = Path(tmp)
        folder, ipython = tmp / "content", tmp / "ipython"
        folder.mkdir()
        startup = ipython / "profile_default" / "startup"
        startup.mkdir(parents=True)
        (startup / "00-colab.py").write_text(STARTUP)
        chapter = for_colab(json.loads(path.read_text()), f"file://{ROOT}")
        target = folder / path.name
        target.write_text(json.dumps(chapter))
        nb = nbformat.read(target, as_version=4)
        env = {
            **os.environ,
            "IPYTHONDIR": str(ipython),
            "MPLBACKEND": "agg",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        }
        client = NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(folder)}},
        )
        peak, done = [0], threading.Event()
        started = time.perf_counter()
        error: Optional[str] = None
        with client.setup_kernel(env=env):
            pid = client.km.provisioner.process.pid

            def sample():
                while not done.is_set():
                    peak[0] = max(peak[0], _tree_rss(pid))
                    done.wait(0.2)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            try:
                for index, cell in enumerate(nb.cells):
                    if cell.cell_type == "code":
                        client.execute_cell(cell, index)
            except Exception as err:  # a failing cell: the chapter fails
                error = f"{type(err).__name__}: {str(err).strip().splitlines()[-1]}"
            finally:
                done.set()
                sampler.join()
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_bytes": peak[0], "error": error}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``tools/colab_check.py [NOTEBOOK ...]``: 1 if a chapter fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--timeout", type=int, default=1800)
    args = parser.parse_args(argv)
    want = colab_python_version()
    have = ".".join(map(str, sys.version_info[:2]))
    if want.rsplit(".", 1)[0] != have:
        print(f"Colab runs Python {want}, this is {sys.version.split()[0]}")
        return 1
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    failed: List[str] = []
    for path in paths:
        out = run_chapter(path, timeout=args.timeout)
        status = "pass" if out["error"] is None else f"FAIL {out['error']}"
        gb = out["peak_bytes"] / 2**30
        print(f"{Path(path).stem}: {out['seconds']:.0f} s, peak {gb:.2f} GB, {status}")
        sys.stdout.flush()
        if out["error"] is not None:
            failed.append(Path(path).stem)
    print(f"{len(paths) - len(failed)} of {len(paths)} chapters pass on Colab's stack")
    return 1 if failed else 0


if __name__ == "__main__":
    shutil.which("git") or sys.exit("git is needed: pip installs from git+file://")
    sys.exit(main())
