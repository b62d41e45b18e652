"""Data-parallel training with ``tf.distribute``, on one machine or several.

Keras 3's ``model.fit`` runs under ``MirroredStrategy`` (several devices of
one machine; :func:`tripletutils.training.train` takes a ``strategy``),
but with TensorFlow 2.21 and Keras 3 it fails under
``MultiWorkerMirroredStrategy`` (several machines): before the first step it
asks the strategy to average a nested input batch, which the collective
strategy cannot do (keras-team/keras#20585, tensorflow/tensorflow#72388).

:func:`make_train_function` is the package's one custom training loop, and
it works under every strategy: one compiled call runs ``n`` steps; in each,
every replica computes the loss on its share of the global batch, the
gradients are summed across replicas by the Keras optimizer (the loss is
divided by the number of replicas first, so the sum is the gradient of the
global mean) and every replica applies the same update.
:func:`tripletutils.training.train` runs it for recipes with
``loop="compiled"`` (images in memory, batches gathered in the graph);
:func:`train_steps` runs it on a distributed ``tf.data`` dataset.
:func:`tf_config` writes the ``TF_CONFIG`` a worker of a cluster needs.

This module imports only tensorflow and keras (plus the standard library).
"""

from __future__ import annotations

import json
from typing import Callable, List, Optional, Sequence

import keras
import tensorflow as tf

__all__ = ["make_train_function", "train_steps", "tf_config"]


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


def _replica_share(t: tf.Tensor, replica: tf.Tensor, replicas: int) -> tf.Tensor:
    """Replica ``replica``'s contiguous share of a global batch (rows)."""
    n = tf.shape(t, out_type=tf.int64)[0]
    lo = n * tf.cast(replica, tf.int64) // replicas
    hi = n * (tf.cast(replica, tf.int64) + 1) // replicas
    return t[lo:hi]


def make_train_function(
    model: keras.Model,
    loss,
    optimizer: keras.optimizers.Optimizer,
    next_batch: Callable[[tf.Tensor], tuple],
    strategy: Optional[tf.distribute.Strategy] = None,
    split_batch: bool = False,
) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """A compiled function that runs ``n`` training steps per call.

    The one training loop of this package: :func:`train_steps` runs it on a
    distributed dataset, :func:`tripletutils.training.train` (recipes with
    ``loop="compiled"``) on images held in memory. One call is one
    ``tf.function`` execution whose ``tf.range`` loop runs ``n`` steps, so
    Python, callbacks and the Keras ``fit`` machinery are paid once per call,
    not once per step. Each step: ``x, y = next_batch(step)``, the forward
    pass under a ``GradientTape``, the loss (in float32), the gradients and
    the optimizer's update, in every replica.

    Parameters
    ----------
    model : keras.Model
        Built in ``strategy.scope()`` when a strategy is given.
    loss : keras.losses.Loss or callable
        ``loss(y_true, y_pred)``; a Keras loss's ``call`` is used and its
        values averaged over the replica's batch (its reduction is ignored).
    optimizer : keras.optimizers.Optimizer
        Built in the scope too; a ``LossScaleOptimizer`` scales the loss and
        unscales the gradients.
    next_batch : callable
        ``next_batch(step)`` with ``step`` a scalar ``int64`` tensor (the
        global step) returns ``(x, y)``: one global batch computed in the
        graph (e.g. images gathered by index), or per-replica values from a
        distributed iterator.
    strategy : tf.distribute.Strategy, optional
        Default: the current (default) strategy, one device.
    split_batch : bool, default False
        True when ``next_batch`` returns a whole global batch to every
        replica: each replica then takes its contiguous share of the rows.

    Returns
    -------
    callable
        ``run(start, n)``: two scalar ``int64`` tensors (pass tensors, so
        that every call reuses one trace); runs steps ``start .. start+n-1``
        and returns their global mean losses, ``float32`` of shape ``(n,)``.

    Raises
    ------
    TypeError
        On a model, optimizer or ``next_batch`` of the wrong type.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError(
            f"optimizer must be a keras optimizer, got {type(optimizer).__name__}"
        )
    if not callable(loss) or not callable(next_batch):
        raise TypeError("loss and next_batch must be callable")
    if not isinstance(split_batch, bool):
        raise TypeError(f"split_batch must be a bool, got {type(split_batch).__name__}")
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        optimizer.build(model.trainable_variables)
    replicas = strategy.num_replicas_in_sync

    def replica_loss(y, y_pred):
        # A keras Loss divides its mean by the number of replicas by itself
        # (for non-scalar values); ``call`` gives the unreduced values instead,
        # so that every loss is treated alike: the mean over this replica.
        values = (
            loss.call(y, y_pred)
            if isinstance(loss, keras.losses.Loss)
            else loss(y, y_pred)
        )
        return tf.reduce_mean(tf.cast(values, tf.float32))

    def replica_step(x, y):
        if split_batch and replicas > 1:
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            x, y = tf.nest.map_structure(
                lambda t: _replica_share(t, replica, replicas), (x, y)
            )
        with tf.GradientTape() as tape:
            value = replica_loss(y, model(x, training=True))
            # the optimizer sums the replicas' gradients: divide first
            scaled = optimizer.scale_loss(value / replicas)
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return value

    @tf.function
    def run(start, n):
        losses = tf.TensorArray(tf.float32, size=tf.cast(n, tf.int32))
        for i in tf.range(n):
            x, y = next_batch(start + i)
            per_replica = strategy.run(replica_step, args=(x, y))
            value = strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)
            losses = losses.write(tf.cast(i, tf.int32), value)
        return losses.stack()

    return run


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
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    run = make_train_function(
        model, loss_fn, optimizer, lambda step: next(iterator), strategy
    )
    one = tf.constant(1, tf.int64)
    losses: List[float] = [
        float(run(tf.constant(s, tf.int64), one)[0]) for s in range(steps)
    ]
    return model, losses
