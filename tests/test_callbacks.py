"""StepHistory (per-step losses from Keras's running means) and Monitor."""

import numpy as np
import pytest

from tripletutils import losses as L
from tripletutils.callbacks import StepHistory
from tripletutils.evaluation import embed
from tripletutils.metrics import retrieval_metrics
from tripletutils.monitor import Monitor
from tripletutils.training import Recipe, build_recipe_net


def test_step_history_recovers_per_step_losses():
    cb = StepHistory()
    cb.on_epoch_begin(0)
    true = [4.0, 2.0, 3.0, 1.0]
    for i, _ in enumerate(true):
        cb.on_train_batch_end(i, {"loss": np.mean(true[: i + 1])})
    np.testing.assert_allclose(cb.step_loss, true)
    cb.on_epoch_begin(1)
    cb.on_train_batch_end(0, {"loss": 5.0})
    cb.on_train_batch_end(1, {"loss": 3.0})
    np.testing.assert_allclose(cb.step_loss[-2:], [5.0, 1.0])


def test_step_history_block_means_under_steps_per_execution():
    # Keras reports after every 2 steps: each block's mean, repeated (documented)
    cb = StepHistory()
    cb.on_epoch_begin(0)
    true = [4.0, 2.0, 3.0, 1.0]
    cb.on_train_batch_end(1, {"loss": np.mean(true[:2])})
    cb.on_train_batch_end(3, {"loss": np.mean(true)})
    np.testing.assert_allclose(cb.step_loss, [3.0, 3.0, 2.0, 2.0])
    assert "repeated" in StepHistory.__doc__ and "shorter" in StepHistory.__doc__


def test_step_history_smooth():
    np.testing.assert_allclose(
        StepHistory.smooth([1.0, 3.0, 5.0, 7.0], window=2), [1.0, 2.0, 4.0, 6.0]
    )
    with pytest.raises(ValueError, match="window"):
        StepHistory.smooth([1.0], window=0)
    with pytest.raises(ValueError, match="at least 1"):
        StepHistory(validate_every=0)


def test_monitor_records_match_direct_computation(tiny_data):
    x, y = tiny_data(80)
    net = build_recipe_net(Recipe("r", embedding_dim=8), seed=0)
    mon = Monitor(net, x, y, every=2, margin=0.2, probe_size=40)
    row = mon.record()
    e = embed(net, x)
    m = retrieval_metrics(e, y, ks=(1,))
    assert row["precision_at_1"] == pytest.approx(m["precision_at_1"])
    assert row["mean_average_precision_at_r"] == pytest.approx(
        m["mean_average_precision_at_r"]
    )
    d = L.triplet_diagnostics(y[:40], e[:40], 0.2, False)
    assert row["fraction_active"] == pytest.approx(
        float(d["fraction_active"]), abs=1e-6
    )
    assert row["mean_norm"] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="one label per image"):
        Monitor(net, x, y[:-1])
    with pytest.raises(ValueError, match="every"):
        Monitor(net, x, y, every=0)


def test_monitor_probe_takes_every_class_in_turn():
    net = build_recipe_net(Recipe("r", embedding_dim=8), seed=0)
    y = np.repeat(np.arange(4), 10)  # sorted by class, as the chapters' sets are
    x = np.zeros((40, 28, 28, 1), np.float32)
    mon = Monitor(net, x, y, probe_size=8)
    assert y[mon.probe].tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    assert mon.probe.tolist() == [0, 10, 20, 30, 1, 11, 21, 31]
    with pytest.raises(ValueError, match="at least 2 classes"):
        Monitor(net, x, np.zeros(40, np.int64))
