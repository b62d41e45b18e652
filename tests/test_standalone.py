"""Readers copy single modules: each listed one works alone in an empty folder.

Each module is copied, alone, into an empty folder; a fresh, isolated Python
(``-I``: no site-packages path tricks, no current-directory package) imports it
from there and calls one of its functions, checking the result. The README
lists the same modules (checked below), and the modules that build on others.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tripletutils"

#: module -> a call and a check, run with the module imported as ``m``.
CALLS = {
    "data.py": (
        "import numpy as np\n"
        "x, y = np.zeros((2, 28, 28), 'uint8'), np.array([0, 9], 'uint8')\n"
        "m.validate_mnist_arrays(x, y, x, y)\n"
        "try:\n"
        "    m.validate_mnist_arrays(x, y + 20, x, y)\n"
        "except ValueError:\n"
        "    pass\n"
        "else:\n"
        "    raise AssertionError('a label of 29 was accepted')"
    ),
    "sampling.py": (
        "import numpy as np\n"
        "t = m.seed_offline_triplets(np.arange(40) % 4, seed=0)\n"
        "y = np.arange(40) % 4\n"
        "assert t.shape[1] == 3 and (y[t[:, 0]] == y[t[:, 1]]).all()\n"
        "assert (y[t[:, 0]] != y[t[:, 2]]).all()"
    ),
    "models.py": (
        "import numpy as np\n"
        "net = m.build_embedding_net(embedding_dim=8, seed=0)\n"
        "out = m.build_triplet_model(net)(\n"
        "    {k: np.zeros((2, 28, 28, 1), 'float32') for k in m.TRIPLET_INPUT_NAMES})\n"
        "assert tuple(out.shape) == (2, 24)"
    ),
    "losses.py": (
        "import numpy as np\n"
        "e = np.array([[0, 0], [0, 1], [3, 0], [3, 1]], 'float32')\n"
        "v = float(m.batch_hard_triplet_loss(np.array([0, 0, 1, 1]), e, margin=1.0))\n"
        "assert abs(v - 0.0) < 1e-6, v"
    ),
    "evaluation.py": (
        "import numpy as np\n"
        "g = np.array([-1.0, -0.5, 0.2, -0.1])\n"
        "assert m.seed_metric(g) == 0.75"
    ),
    "metrics.py": (
        "import numpy as np\n"
        "e = np.array([[0, 0], [0, 1], [5, 0], [5, 1]], 'float32')\n"
        "r = m.retrieval_metrics(e, np.array([0, 0, 1, 1]), ks=(1,))\n"
        "assert r['precision_at_1'] == 1.0"
    ),
    "verification.py": (
        "import numpy as np\n"
        "d = np.array([0.1, 0.9, 0.2, 0.8])\n"
        "assert m.roc_auc(d, np.array([True, False, True, False])) == 1.0"
    ),
    "clustering.py": (
        "import numpy as np\n"
        "a = np.array([0, 0, 1, 1, 2, 2])\n"
        "assert abs(m.normalized_mutual_information(a, (a + 1) % 3) - 1.0) < 1e-12"
    ),
    "callbacks.py": (
        "cb = m.StepHistory()\n"
        "cb.on_epoch_begin(0)\n"
        "cb.on_train_batch_end(0, {'loss': 4.0})\n"
        "cb.on_train_batch_end(1, {'loss': 3.0})\n"
        "assert cb.step_loss == [4.0, 2.0]"
    ),
    "distributed.py": (
        "import json\n"
        "c = json.loads(m.tf_config(['a:1', 'b:2'], 1))\n"
        "assert c['task'] == {'type': 'worker', 'index': 1}"
    ),
    "explore.py": (
        "import numpy as np\n"
        "s = m.sprite_image(np.zeros((3, 28, 28, 1), 'float32'))\n"
        "assert s.size == (56, 56), s.size"
    ),
    "plotting.py": (
        "import matplotlib\nmatplotlib.use('Agg')\nassert len(m.digit_palette()) == 10"
    ),
    "runtime.py": (
        "tf = m.import_tensorflow()\nm.set_seed(0)\nassert tf.__version__\n"
        "assert m.hardware_info()['tensorflow'] == tf.__version__"
    ),
    "fingerprint.py": (
        "import numpy as np\nassert len(m.data_fingerprint(np.zeros(3))) == 16\n"
        "assert m.source_fingerprint('x = 1') != m.source_fingerprint('x = 2')\n"
        "assert m.source_fingerprint('x = 1  # c') == m.source_fingerprint('x = 1')"
    ),
    "search.py": (
        "import numpy as np\n"
        "e = np.array([[0, 0], [0, 1], [5, 0], [5, 1]], 'float32')\n"
        "r = m.EmbeddingIndex(e, np.array([0, 0, 1, 1])).search(e + 0.1, k=1)\n"
        "assert r.indices[:, 0].tolist() == [0, 1, 2, 3], r"
    ),
    "glue.py": (
        "m.glue('k', 0.25, display=False)\n"
        "try:\n"
        "    m.glue('a:b', 1)\n"
        "except ValueError:\n"
        "    pass\n"
        "else:\n"
        "    raise AssertionError('a colon in a glue key was accepted')"
    ),
}

#: Modules that build on the others: the README says so.
BUILD_ON_OTHERS = {
    "monitor.py",
    "training.py",
    "recipes.py",
    "bench.py",
    "search_bench.py",
    "step_profile.py",
    "ledger.py",
    "experiments.py",
    "engine.py",
}


def test_every_module_is_listed_once():
    modules = {p.name for p in PACKAGE.glob("*.py")} - {"__init__.py"}
    assert set(CALLS) | BUILD_ON_OTHERS == modules
    assert not set(CALLS) & BUILD_ON_OTHERS


def test_readme_lists_the_standalone_modules():
    readme = (ROOT / "README.md").read_text()
    para = readme[readme.index("or copy single modules") :]
    para = para[: para.index("\n\n")]
    alone = para[: para.index("They import only")]
    others = para[para.index("`monitor.py`") :]
    assert set(re.findall(r"`(\w+\.py)`", alone)) == set(CALLS)
    assert set(re.findall(r"`(\w+\.py)`", others)) == BUILD_ON_OTHERS


@pytest.mark.slow
@pytest.mark.parametrize("module", sorted(CALLS))
def test_module_works_alone(tmp_path, module):
    shutil.copy(PACKAGE / module, tmp_path / module)
    name = module[:-3]
    code = (
        f"import sys\nsys.path.insert(0, {str(tmp_path)!r})\nimport {name} as m\n"
        + CALLS[module]
        + "\nprint(sorted(k for k in sys.modules if k.startswith('tripletutils')))"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"
