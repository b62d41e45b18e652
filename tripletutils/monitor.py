"""A Keras callback that watches retrieval quality and triplet statistics.

:class:`Monitor` records, every few steps, retrieval quality on held-out
images (Precision@1 and MAP@R, leave-one-out) and the diagnostics of
:func:`tripletutils.losses.triplet_diagnostics` on a fixed probe batch: the
learning curves of chapter 7 and the failure signals of chapter 11.

This module builds on ``tripletutils.evaluation``, ``metrics`` and ``losses``.
"""

from __future__ import annotations

from typing import Dict, List

import keras
import numpy as np

from . import losses as L
from .evaluation import embed
from .metrics import retrieval_metrics

__all__ = ["Monitor"]


class Monitor(keras.callbacks.Callback):
    """Every ``every`` steps: retrieval on held-out images and probe diagnostics.

    Parameters
    ----------
    net : keras.Model
        The embedding network being trained (for a three-input model, the
        shared network inside it).
    images : numpy.ndarray
        Held-out images, ``float32`` of shape ``(M, *image_shape)``, as the
        network takes them.
    labels : numpy.ndarray
        Their integer classes, shape ``(M,)``. Retrieval is leave-one-out
        among these ``M`` images (each class needs two members).
    every : int, default 50
        Steps between records (and one at the end of training).
    margin : float, default 0.2
        Margin at which the diagnostics count a triplet as active.
    squared : bool, default False
        Distances of the diagnostics.
    probe_size : int, default 200
        The diagnostics use ``probe_size`` images taken class by class in turn
        (the first image of each class, then the second...; all valid triplets
        among them: ``probe_size ** 3`` floats).

    Attributes
    ----------
    probe
        ``numpy.ndarray`` of ``int64`` indices into ``images``: the
        diagnostics' probe.
    records : list of dict
        One per record: ``step``, ``precision_at_1``,
        ``mean_average_precision_at_r``, and the keys of
        :func:`~tripletutils.losses.triplet_diagnostics`.
    """

    def __init__(
        self,
        net,
        images,
        labels,
        every: int = 50,
        margin: float = 0.2,
        squared: bool = False,
        probe_size: int = 200,
    ):
        super().__init__()
        if not isinstance(net, keras.Model):
            raise TypeError(f"net must be a keras.Model, got {type(net).__name__}")
        if not isinstance(images, np.ndarray) or not isinstance(labels, np.ndarray):
            raise TypeError("images and labels must be numpy arrays")
        if len(images) != len(labels) or labels.ndim != 1:
            raise ValueError(
                f"need one label per image, got {images.shape} and {labels.shape}"
            )
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}")
        if (
            isinstance(probe_size, bool)
            or not isinstance(probe_size, int)
            or probe_size < 2
        ):
            raise ValueError(f"probe_size must be an int >= 2, got {probe_size!r}")
        self.net, self.images, self.labels = net, images, labels
        self.every, self.margin, self.squared, self.probe_size = (
            every,
            margin,
            squared,
            probe_size,
        )
        if len(np.unique(labels)) < 2:
            raise ValueError(
                f"Monitor needs images of at least 2 classes, got {np.unique(labels)}"
            )
        # The probe takes the images class by class in turn (the first of each
        # class, then the second...), so a set sorted by class still gives a
        # probe of every class rather than of the first one.
        ranks = np.empty(len(labels), dtype=np.int64)
        for c in np.unique(labels):
            members = np.flatnonzero(labels == c)
            ranks[members] = np.arange(len(members))
        self.probe = np.lexsort((labels, ranks))[:probe_size]
        self.records: List[Dict[str, float]] = []
        self._step = 0

    def record(self) -> Dict[str, float]:
        """Measure now and append to ``records``.

        Returns
        -------
        dict of str to float
            The new record.
        """
        e = embed(self.net, self.images)
        row = {"step": float(self._step)}
        if np.all(np.isfinite(e)):
            m = retrieval_metrics(e, self.labels, ks=(1,))
            row["precision_at_1"] = m["precision_at_1"]
            row["mean_average_precision_at_r"] = m["mean_average_precision_at_r"]
        else:  # a network that has gone NaN retrieves nothing
            row["precision_at_1"] = row["mean_average_precision_at_r"] = float("nan")
        probe = self.probe
        diag = L.triplet_diagnostics(
            self.labels[probe], e[probe], self.margin, self.squared
        )
        row.update({key: float(value) for key, value in diag.items()})
        self.records.append(row)
        return row

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self._step

    def on_train_batch_end(self, batch, logs=None):
        # ``batch`` is the index of the last step run (several per call with
        # steps_per_execution > 1)
        before, self._step = self._step, getattr(self, "_epoch_start", 0) + batch + 1
        if self._step // self.every > before // self.every:
            self.record()

    def on_train_end(self, logs=None):
        if not self.records or self.records[-1]["step"] != self._step:
            self.record()
