"""train_recipe under tf.distribute.MirroredStrategy matches the single-device run."""
import json
import subprocess
import sys

import pytest

SCRIPT = r"""
import dataclasses, json
from tripletutils.runtime import import_tensorflow
tf = import_tensorflow()
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np
from tripletutils.recipes import IMPROVED_RECIPE, train_recipe
rng = np.random.default_rng(0)
y = np.arange(320) % 4
x = rng.random((320, 28, 28, 1)).astype(np.float32)
for i, c in enumerate(y):
    x[i, c * 6 : c * 6 + 4, :, 0] += 0.15
recipe = dataclasses.replace(IMPROVED_RECIPE, epochs=2, batch_size=16, dropout=0.0)
out = {}
for label, strategy in (("single", None), ("mirrored", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))):
    _, model, h = train_recipe(recipe, x, y, x[:80], y[:80], strategy=strategy, verbose=0, validate_every=5)
    out[label] = {"epoch_loss": h["epoch_loss"], "step_loss": h["step_loss"], "val_loss": h["val_loss"],
                  "replicas": 1 if strategy is None else strategy.num_replicas_in_sync}
print("RESULT" + json.dumps(out))
"""

#: Relative tolerance between the two runs: the replicas' gradients are summed
#: in another order than one device sums them, nothing else differs.
RTOL = 1e-4


@pytest.fixture(scope="module")
def runs():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


def test_mirrored_strategy_uses_two_replicas(runs):
    assert runs["single"]["replicas"] == 1 and runs["mirrored"]["replicas"] == 2


def test_mirrored_losses_match_single_device(runs):
    single, mirrored = runs["single"], runs["mirrored"]
    # 2 epochs of 19 batches: 316 seed-scheme triplets per epoch // 16
    assert len(single["step_loss"]) == len(mirrored["step_loss"]) == 38
    assert single["epoch_loss"][1] < 0.5 * single["epoch_loss"][0]  # it learned something
    for key in ("epoch_loss", "step_loss", "val_loss"):
        assert mirrored[key] == pytest.approx(single[key], rel=RTOL, abs=1e-6), key
