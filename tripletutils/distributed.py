"""Data-parallel training with ``tf.distribute``, on one machine or several.

Keras 3's ``model.fit`` runs under ``MirroredStrategy`` (several devices of
one machine; :func:`tripletutils.training.train` takes a ``strategy``),
but with TensorFlow 2.21 and Keras 3 it fails under
``MultiWorkerMirroredStrategy`` (several machines): before the first step it
asks the strategy to average a nested input batch, which the collective
strategy cannot do (keras-team/keras#20585, tensorflow/tensorflow#72388).

:func:`train_steps` is the custom training loop that works under every
strategy: each replica computes the loss on its share of the global batch,
the gradients are summed across replicas by the Keras optimizer (the loss is
divided by the number of replicas first, so the sum is the gradient of the
global mean) and every replica applies the same update.
:func:`tf_config` writes the ``TF_CONFIG`` a worker of a cluster needs.

This module imports only tensorflow and keras (plus the standard library).
"""

from __future__ import annotations

import json
from typing import Callable, List, Optional, Sequence

import keras
import tensorflow as tf

__all__ = ["train_steps", "tf_config"]


def tf_config(workers: Sequence[str], index: int) -> str:
    """The ``TF_CONFIG`` value for worker ``index`` of a cluster.

    Parameters
    ----------
    workers : sequence of str
        ``"host:port"`` of every worker, in the same order on every machine.
        Worker 0 is the chief (it should write checkpoints and logs).
    index : int
        This worker's position in ``workers``.

    Returns
    -------
    str
        JSON, e.g. ``{"cluster": {"worker": [...]}, "task": {"type": "worker",
        "index": 0}}``; set it as the environment variable ``TF_CONFIG``
        before creating the strategy.

    Raises
    ------
    TypeError, ValueError
        If ``workers`` is not a non-empty list of ``host:port`` strings or
        ``index`` is out of range.
    """
    if isinstance(workers, str) or not isinstance(workers, Sequence) or not workers:
        raise TypeError(
            f"workers must be a non-empty list of 'host:port' strings, got {workers!r}"
        )
    for w in workers:
        if (
            not isinstance(w, str)
            or w.count(":") != 1
            or not w.rsplit(":", 1)[1].isdigit()
        ):
            raise ValueError(f"each worker must be 'host:port', got {w!r}")
    if (
        isinstance(index, bool)
        or not isinstance(index, int)
        or not 0 <= index < len(workers)
    ):
        raise ValueError(
            f"index must be an int in 0..{len(workers) - 1}, got {index!r}"
        )
    return json.dumps(
        {
            "cluster": {"worker": list(workers)},
            "task": {"type": "worker", "index": index},
        }
    )


def train_steps(
    build: Callable[[], tuple],
    dataset: tf.data.Dataset,
    steps: int,
    strategy: Optional[tf.distribute.Strategy] = None,
) -> tuple:
    """Train ``steps`` steps with a custom loop under a ``tf.distribute`` strategy.

    Parameters
    ----------
    build : callable
        Called with no argument inside ``strategy.scope()``; returns
        ``(model, loss, optimizer)``: a Keras model, a Keras loss (its
        ``call`` is used and averaged over the replica's batch; its
        reduction setting is ignored) or any callable ``loss(y_true,
        y_pred)`` returning per-sample values or their mean, and a Keras
        optimizer. Building them in the scope puts their variables on every
        replica.
    dataset : tf.data.Dataset
        Elements ``(x, y)`` of one *global* batch each (split between the
        replicas); at least ``steps`` elements.
    steps : int
        Number of training steps.
    strategy : tf.distribute.Strategy, optional
        ``MirroredStrategy``, ``MultiWorkerMirroredStrategy``... (default: the
        default strategy, one device).

    Returns
    -------
    model : keras.Model
        The trained model.
    losses : list of float
        The global mean loss of each step (averaged over the replicas).

    Raises
    ------
    TypeError, ValueError
        On a non-callable ``build``, a bad ``steps`` or a ``build`` that does
        not return a model, a loss and an optimizer.
    """
    if not callable(build):
        raise TypeError(f"build must be callable, got {type(build).__name__}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            f"dataset must be a tf.data.Dataset, got {type(dataset).__name__}"
        )
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        built = build()
        if not (isinstance(built, tuple) and len(built) == 3):
            raise ValueError("build must return (model, loss, optimizer)")
        model, loss_fn, optimizer = built
        if not isinstance(model, keras.Model) or not isinstance(
            optimizer, keras.optimizers.Optimizer
        ):
            raise ValueError(
                "build must return a keras.Model, a loss and a keras optimizer"
            )
        optimizer.build(model.trainable_variables)
    replicas = strategy.num_replicas_in_sync
    iterator = iter(strategy.experimental_distribute_dataset(dataset))

    def replica_loss(y, y_pred):
        # A keras Loss divides its mean by the number of replicas by itself
        # (for non-scalar values); ``call`` gives the unreduced values instead,
        # so that every loss is treated alike: the mean over this replica.
        values = (
            loss_fn.call(y, y_pred)
            if isinstance(loss_fn, keras.losses.Loss)
            else loss_fn(y, y_pred)
        )
        return tf.reduce_mean(tf.cast(values, tf.float32))

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            loss = replica_loss(y, model(x, training=True))
            scaled = loss / replicas  # the optimizer sums the replicas' gradients
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function
    def step(it):
        x, y = next(it)
        per_replica = strategy.run(replica_step, args=(x, y))
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)

    losses: List[float] = [float(step(iterator)) for _ in range(steps)]
    return model, losses
