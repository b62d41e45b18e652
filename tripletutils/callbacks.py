"""A Keras callback: per-step loss history and a periodic validation curve.

Keras 3 reports, at the end of each batch, the *running mean* of the loss
since the start of the epoch. :class:`StepHistory` recovers each step's own
loss from consecutive running means (``n * m_n - (n - 1) * m_{n-1}``, in
float64), which gives a real per-step curve rather than the seed's two-point
one; every ``validate_every`` steps it also evaluates a fixed validation set.

Imports keras and numpy only.
"""

from __future__ import annotations

from typing import Dict, List

import keras
import numpy as np

__all__ = ["StepHistory"]


class StepHistory(keras.callbacks.Callback):
    """Record every training step's loss and a validation loss now and then.

    Parameters
    ----------
    validation_data : iterable of (x, y) batches, optional
        E.g. a finite ``tf.data.Dataset``. Its mean loss (the model's compiled
        loss, inference mode) is computed every ``validate_every`` steps and
        at the end of training. Keep it small: it runs inside training.
    validate_every : int, default 100
        Steps between validation evaluations.

    Attributes
    ----------
    step_loss : list of float
        The loss of each training step (global step order), with three limits
        that come from what Keras reports:

        * Keras keeps its running mean in float32, and
          ``n * m_n - (n - 1) * m_{n-1}`` subtracts two numbers about ``n``
          times larger than one step's loss, so late in a long epoch the
          recovered value carries a rounding error of up to about 1e-5 (a step
          of zero loss comes out as a tiny positive or negative number).
        * Keras's running mean is weighted by batch size, and this callback
          assumes equal batches. An epoch whose last batch is shorter (``N``
          not a multiple of the batch size, as for the seed's 54,200 offline
          triplets in batches of 32) gets a slightly wrong value for that last
          step: the weighted mean is read as an unweighted one.
        * With ``steps_per_execution`` = ``s`` > 1, Keras reports only after
          every ``s`` steps, so each block of ``s`` entries holds the block's
          mean loss, repeated ``s`` times (the length is still one per step).

        All three leave the curve's shape and its smoothed values right;
        chapter 4 shows them beside its per-step plot. They concern
        ``model.fit`` only: the compiled loop (``loop="compiled"``) calls the
        callback after every step with an unweighted running mean kept in
        float64, so there the recovered values are exact up to float64
        rounding.
    val_steps : list of int
        Global step at which each validation loss was measured.
    val_loss : list of float
        The validation losses, one per entry of ``val_steps``.
    """

    def __init__(self, validation_data=None, validate_every: int = 100):
        super().__init__()
        if isinstance(validate_every, bool) or not isinstance(validate_every, int):
            raise TypeError(
                f"validate_every must be an int, got {type(validate_every).__name__}"
            )
        if validate_every < 1:
            raise ValueError(f"validate_every must be at least 1, got {validate_every}")
        self.validation_data = validation_data
        self.validate_every = validate_every
        self.step_loss: List[float] = []
        self.val_steps: List[int] = []
        self.val_loss: List[float] = []
        self._prev_mean = 0.0
        self._prev_n = 0
        self._global = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._prev_mean, self._prev_n = 0.0, 0

    def on_train_batch_end(self, batch, logs=None):
        mean = float(logs["loss"])
        n = batch + 1  # batches seen this epoch
        k = n - self._prev_n  # > 1 with steps_per_execution > 1
        step = (n * mean - self._prev_n * self._prev_mean) / k
        self.step_loss.extend([step] * k)
        self._prev_mean, self._prev_n = mean, n
        self._global += k
        if self.validation_data is not None and self._global % self.validate_every < k:
            self._validate()

    def on_train_end(self, logs=None):
        if self.validation_data is not None and (
            not self.val_steps or self.val_steps[-1] != self._global
        ):
            self._validate()

    def _validate(self):
        # Not model.evaluate(): it resets the loss tracker whose running mean
        # on_train_batch_end reads. The compiled loss object is called directly.
        # predict_on_batch runs the model's compiled predict function.
        total, count = 0.0, 0
        for x, y in self.validation_data:
            n = int(keras.ops.shape(y)[0])
            value = self.model.loss(y, self.model.predict_on_batch(x))
            total += float(value) * n
            count += n
        self.val_steps.append(self._global)
        self.val_loss.append(total / max(count, 1))

    def as_dict(self) -> Dict[str, list]:
        """The history as plain lists (JSON-serialisable).

        Returns
        -------
        dict
            Keys ``step_loss``, ``val_steps``, ``val_loss``.
        """
        return {
            "step_loss": list(self.step_loss),
            "val_steps": list(self.val_steps),
            "val_loss": list(self.val_loss),
        }

    @staticmethod
    def smooth(values, window: int = 50) -> np.ndarray:
        """Trailing moving average, for plotting noisy per-step losses.

        Parameters
        ----------
        values : sequence of float
            Shape ``(T,)``.
        window : int, default 50

        Returns
        -------
        numpy.ndarray
            ``float64``, shape ``(T,)``; element ``t`` is the mean of the last
            ``min(window, t + 1)`` values.
        """
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be a positive int, got {window!r}")
        v = np.asarray(values, dtype=np.float64)
        if v.ndim != 1:
            raise ValueError(f"values must be 1-D, got shape {v.shape}")
        c = np.concatenate([[0.0], np.cumsum(v)])
        idx = np.arange(1, len(v) + 1)
        lo = np.maximum(idx - window, 0)
        return (c[idx] - c[lo]) / (idx - lo)
