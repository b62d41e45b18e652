"""training.train under tf.distribute.MirroredStrategy matches the single-device run."""

import json
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # subprocesses that train

#: Both subprocess scripts train on the same data: 320 images of 4 classes,
#: each with a faint class-specific band (needs numpy imported as np).
TINY_DATA = """
rng = np.random.default_rng(0)
y = np.arange(320) % 4
x = rng.random((320, 28, 28, 1)).astype(np.float32) * 0.85  # in [0, 1] with the band
for i, c in enumerate(y):
    x[i, c * 6 : c * 6 + 4, :, 0] += 0.15
"""

SCRIPT = (
    r"""
import dataclasses, json
from tripletutils.runtime import import_tensorflow
tf = import_tensorflow()
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)
import numpy as np
from tripletutils.recipes import IMPROVED_RECIPE
from tripletutils.training import train
"""
    + TINY_DATA
    + r"""
# 4 x 12 // 3 = 16 triplets a batch
recipe = dataclasses.replace(IMPROVED_RECIPE, epochs=2, p=4, k=12, dropout=0.0)
compiled = dataclasses.replace(recipe, loop="compiled", steps_per_execution=5)
out = {}
for label, strategy, r in (
    ("single", None, recipe),
    ("mirrored", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), recipe),
    ("single_compiled", None, compiled),
    (
        "mirrored_compiled",
        tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]),
        compiled,
    ),
):
    _, model, h = train(r, x, y, x[:80], y[:80], strategy=strategy, validate_every=5)
    out[label] = {
        "epoch_loss": h["epoch_loss"],
        "step_loss": h["step_loss"],
        "val_loss": h["val_loss"],
        "replicas": 1 if strategy is None else strategy.num_replicas_in_sync,
    }
print("RESULT" + json.dumps(out))
"""
)

#: Relative tolerance between the two runs: the replicas' gradients are summed
#: in another order than one device sums them, nothing else differs.
RTOL = 1e-4


def _run(script, *args, env=None):
    """Run ``script`` in a fresh Python; return the JSON it prints after "RESULT"."""
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])


@pytest.fixture(scope="module")
def runs():
    return _run(SCRIPT)


def test_mirrored_strategy_uses_two_replicas(runs):
    assert runs["single"]["replicas"] == 1 and runs["mirrored"]["replicas"] == 2


def test_mirrored_losses_match_single_device(runs):
    single, mirrored = runs["single"], runs["mirrored"]
    # 2 epochs of 19 batches: 316 seed-scheme triplets per epoch // 16
    assert len(single["step_loss"]) == len(mirrored["step_loss"]) == 38
    assert (
        single["epoch_loss"][1] < 0.5 * single["epoch_loss"][0]
    )  # it learned something
    # Rounding differences from the order of summation grow with every update, and
    # faster once few triplets are active (seen: 6e-6 relative after 19 steps, 0.13
    # after 36). So the first epoch is compared step by step, where they are still
    # rounding-sized, not the end of a chaotic trajectory.
    first = slice(0, 19)
    assert mirrored["step_loss"][first] == pytest.approx(
        single["step_loss"][first], rel=RTOL, abs=1e-6
    )
    assert mirrored["epoch_loss"][0] == pytest.approx(single["epoch_loss"][0], rel=RTOL)
    # validation every 5 steps: the three points inside the first epoch
    assert mirrored["val_loss"][:3] == pytest.approx(single["val_loss"][:3], rel=RTOL)


@pytest.mark.parametrize("label", ["mirrored_compiled", "single_compiled"])
def test_compiled_loop_matches_fit_on_one_and_two_replicas(runs, label):
    # the compiled loop feeds the same batches as fit; with two replicas each
    # takes its half of the global batch inside the graph
    single, other = runs["single"], runs[label]
    assert len(other["step_loss"]) == 38
    first = slice(0, 18)  # fit's last step of an epoch reads a weighted mean
    assert other["step_loss"][first] == pytest.approx(
        single["step_loss"][first], rel=RTOL, abs=1e-6
    )
    assert other["epoch_loss"][0] == pytest.approx(single["epoch_loss"][0], rel=RTOL)
    assert other["val_loss"][:3] == pytest.approx(single["val_loss"][:3], rel=RTOL)


# --------------------------------------------------------------------------- #
# The custom loop of tripletutils.distributed: one device, two devices, two workers
# --------------------------------------------------------------------------- #
LOOP = (
    r"""
import json, os, sys
from tripletutils.runtime import import_tensorflow
tf = import_tensorflow()
mode = sys.argv[1]
if mode == "mirrored":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
import keras
import numpy as np
from tripletutils.distributed import train_steps
from tripletutils.losses import OfflineTripletLoss
from tripletutils.models import build_embedding_net, build_triplet_model
from tripletutils.sampling import random_triplet_dataset
"""
    + TINY_DATA
    + r"""
if mode == "single":
    strategy = None
elif mode == "mirrored":
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
else:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()  # reads TF_CONFIG
def build():
    net = build_embedding_net(
        embedding_dim=16, activation=None, l2_normalize=True, seed=0, dropout=0.0
    )
    return (
        build_triplet_model(net),
        OfflineTripletLoss(margin=1.0, squared=True),
        keras.optimizers.Adam(1e-3),
    )
data, _ = random_triplet_dataset(x, y, batch_size=16, seed=0)
model, losses = train_steps(build, data, 20, strategy)
replicas = 1 if strategy is None else strategy.num_replicas_in_sync
print("RESULT" + json.dumps({"losses": losses, "replicas": replicas}))
"""
)


def _run_loop(mode, env=None):
    return _run(LOOP, mode, env=env)


#: Two replicas sum their gradients in another order than one device: the
#: losses agree to rounding for the first steps; then the differences grow
#: about tenfold a step (Adam divides by small second moments early on, and a
#: triplet sitting on the hinge can flip). When they start depends on the CPU's
#: arithmetic: on an Intel Xeon with AVX-512 they stayed within RTOL for 15
#: steps; on an AVX2-only AMD EPYC the relative differences of steps 0-7 were
#: 0, 0, 1.3e-7, 5.5e-6, 5.2e-6, 4.2e-5, 8.0e-4 and 3.6e-4. So: RTOL on the
#: first 5 steps, and both runs must learn over all 20.
EARLY_STEPS = 5


@pytest.fixture(scope="module")
def loop_single():
    return _run_loop("single")


@pytest.fixture(scope="module")
def loop_mirrored():
    return _run_loop("mirrored")


def test_custom_loop_mirrored_matches_single_device(loop_single, loop_mirrored):
    single, mirrored = loop_single["losses"], loop_mirrored["losses"]
    assert loop_single["replicas"] == 1 and loop_mirrored["replicas"] == 2
    assert len(mirrored) == len(single) == 20
    for losses in (single, mirrored):
        assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])  # it learned
    assert mirrored[:EARLY_STEPS] == pytest.approx(
        single[:EARLY_STEPS], rel=RTOL, abs=1e-6
    )


def test_custom_loop_two_workers_match_mirrored(loop_single, loop_mirrored):
    import os
    import socket

    from tripletutils.distributed import tf_config

    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("localhost", 0))
            ports.append(s.getsockname()[1])
    workers = [f"localhost:{p}" for p in ports]
    procs = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=tf_config(workers, index))
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", LOOP, "multiworker"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
        line = next(l for l in out.splitlines() if l.startswith("RESULT"))
        results.append(json.loads(line[len("RESULT") :]))
    for r in results:
        assert r["replicas"] == 2
        # the same two-replica arithmetic as MirroredStrategy on one machine
        assert r["losses"] == pytest.approx(loop_mirrored["losses"], rel=1e-6, abs=1e-7)
        assert r["losses"][:EARLY_STEPS] == pytest.approx(
            loop_single["losses"][:EARLY_STEPS], rel=RTOL, abs=1e-6
        )


def test_tf_config():
    from tripletutils.distributed import tf_config

    cfg = json.loads(tf_config(["a:1", "b:2"], 1))
    assert cfg == {
        "cluster": {"worker": ["a:1", "b:2"]},
        "task": {"type": "worker", "index": 1},
    }
    with pytest.raises(ValueError, match="host:port"):
        tf_config(["a"], 0)
    with pytest.raises(ValueError, match="index"):
        tf_config(["a:1"], 1)
    with pytest.raises(TypeError, match="non-empty list"):
        tf_config("a:1", 0)
