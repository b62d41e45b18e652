"""Figures used across the book: digit grids, triplets, embedding maps.

All figures use seaborn's colour-blind-safe ``colorblind`` palette for the ten
digits, label their axes and carry a title. Each function returns the
matplotlib ``Figure`` so that a notebook can save or tweak it.

Imports numpy, matplotlib and seaborn only.
"""

from __future__ import annotations

from typing import Dict, Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

__all__ = [
    "digit_palette",
    "class_colors",
    "plot_digit_grid",
    "plot_triplets",
    "plot_embedding_maps",
    "plot_retrieval_grid",
]


def digit_palette(n: int = 10) -> list:
    """Seaborn's colour-blind-safe palette with ``n`` colours (RGB tuples).

    Parameters
    ----------
    n : int, default 10

    Returns
    -------
    list of tuple of float
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    return sns.color_palette("colorblind", n)


def class_colors(classes: Sequence[int]) -> Dict[int, tuple]:
    """The colour of each class, the same in every figure of the book.

    Parameters
    ----------
    classes : sequence of int
        Distinct class labels.

    Returns
    -------
    dict of int to tuple of float
        RGB per class. Digits 0..9 take the colour of their digit in
        :func:`digit_palette` (whichever of them are present), as the embedding
        explorer does; other labels take matplotlib's ``tab20`` colours (the
        same as Bokeh's ``Category20``, which the explorer uses for them) by
        their rank, which tells up to 20 classes apart but is not colour-blind
        safe.

    Raises
    ------
    TypeError
        If a class is not an int.
    ValueError
        If classes repeat, or there are more than 20 of labels outside 0..9.
    """
    classes = list(classes)
    if any(
        isinstance(c, bool) or not isinstance(c, (int, np.integer)) for c in classes
    ):
        raise TypeError(f"classes must be ints, got {classes!r}")
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct, got {classes!r}")
    if all(0 <= c <= 9 for c in classes):
        palette = digit_palette(10)
        return {int(c): palette[int(c)] for c in classes}
    if len(classes) > 20:
        raise ValueError(
            f"at most 20 classes can be told apart by colour, got {len(classes)}"
        )
    palette = sns.color_palette("tab20", 20)
    return {int(c): palette[k] for k, c in enumerate(sorted(classes))}


def _check_images_labels(images: np.ndarray, labels: np.ndarray) -> None:
    if not isinstance(images, np.ndarray) or images.ndim not in (3, 4):
        raise ValueError(
            f"images must be a numpy array of shape (N, H, W) or (N, H, W, 1), got "
            f"{getattr(images, 'shape', type(images).__name__)}"
        )
    if not isinstance(labels, np.ndarray) or labels.shape != (len(images),):
        raise ValueError(
            f"labels must be a numpy array of shape ({len(images)},), got "
            f"{getattr(labels, 'shape', type(labels).__name__)}"
        )


def _img(x: np.ndarray) -> np.ndarray:
    return x[..., 0] if x.ndim == 3 else x


def plot_digit_grid(
    images: np.ndarray,
    labels: np.ndarray,
    per_class: int = 10,
    title: str = "MNIST digits by class",
):
    """A grid with one row per class and its first ``per_class`` images.

    Parameters
    ----------
    images : numpy.ndarray
        Shape ``(N, 28, 28)`` or ``(N, 28, 28, 1)``.
    labels : numpy.ndarray
        Integer labels, shape ``(N,)``.
    per_class : int, default 10
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    _check_images_labels(images, labels)
    classes = np.unique(labels)
    fig, axes = plt.subplots(
        len(classes),
        per_class,
        figsize=(per_class * 0.75, len(classes) * 0.8),
        squeeze=False,
    )
    for r, c in enumerate(classes):
        idx = np.flatnonzero(labels == c)[:per_class]
        for j, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if j < len(idx):
                ax.imshow(_img(images[idx[j]]), cmap="gray_r")
        axes[r, 0].set_ylabel(str(c), rotation=0, labelpad=12, fontsize=11, va="center")
    fig.supylabel("digit class")
    fig.supxlabel(f"first {per_class} training images of each class")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_triplets(
    images: np.ndarray,
    labels: np.ndarray,
    triplets: np.ndarray,
    rows: Sequence[int],
    title: str = "Sampled triplets",
):
    """Show triplets as columns anchor / positive / negative, one row each.

    Parameters
    ----------
    images : numpy.ndarray
        Shape ``(N, 28, 28)`` or ``(N, 28, 28, 1)``.
    labels : numpy.ndarray
        Integer labels, shape ``(N,)``.
    triplets : numpy.ndarray
        Integer array ``(T, 3)`` of positions in ``images``.
    rows : sequence of int
        Which triplets (rows of ``triplets``) to show.
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    _check_images_labels(images, labels)
    if (
        not isinstance(triplets, np.ndarray)
        or triplets.ndim != 2
        or triplets.shape[1] != 3
    ):
        raise ValueError("triplets must be an integer numpy array of shape (T, 3)")
    rows = list(rows)
    if not rows or max(rows) >= len(triplets) or min(rows) < 0:
        raise ValueError(f"rows must be non-empty positions in 0..{len(triplets) - 1}")
    names = ("anchor", "positive", "negative")
    fig, axes = plt.subplots(
        len(rows), 3, figsize=(3.6, 1.25 * len(rows)), squeeze=False
    )
    for r, t in enumerate(rows):
        for j in range(3):
            i = triplets[t, j]
            ax = axes[r, j]
            ax.imshow(_img(images[i]), cmap="gray_r")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(f"#{i} ({labels[i]})", fontsize=8)
            if r == 0:
                ax.set_title(names[j], fontsize=10)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def plot_embedding_maps(
    maps: Dict[str, Dict[str, np.ndarray]],
    labels: np.ndarray,
    title: str = "2-D maps of the test set",
    point_size: float = 3.0,
):
    """A grid of 2-D projections: one row per representation, one column per method.

    Parameters
    ----------
    maps : dict of str to dict of str to numpy.ndarray
        ``maps[row][method]`` is an array of shape ``(N, 2)``, e.g.
        ``{"raw pixels": {"PCA": ..., "t-SNE": ..., "UMAP": ...}, ...}``.
    labels : numpy.ndarray
        Integer class labels, shape ``(N,)``. Every class is drawn: digits 0..9
        in the book's colours for them (:func:`class_colors`), so a digit has
        the same colour in every figure and in the embedding explorer.
    title : str
    point_size : float, default 3.0

    Returns
    -------
    matplotlib.figure.Figure
        With one legend of the classes.

    Raises
    ------
    ValueError
        On empty ``maps``, mismatched shapes, labels that are not 1-D integers,
        or more than 20 classes (too many to tell apart by colour).
    """
    if not maps:
        raise ValueError("maps must hold at least one representation")
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be a 1-D integer array, got {labels.dtype} {labels.shape}"
        )
    classes = [int(c) for c in np.unique(labels)]
    colors = class_colors(classes)
    methods = list(next(iter(maps.values())))
    fig, axes = plt.subplots(
        len(maps),
        len(methods),
        figsize=(3.6 * len(methods), 3.4 * len(maps)),
        squeeze=False,
    )
    for r, (row_name, row) in enumerate(maps.items()):
        if list(row) != methods:
            raise ValueError(
                f"every row needs the methods {methods}, {row_name!r} has {list(row)}"
            )
        for c, method in enumerate(methods):
            xy = np.asarray(row[method])
            if xy.shape != (len(labels), 2):
                raise ValueError(
                    f"maps[{row_name!r}][{method!r}] must have shape "
                    f"({len(labels)}, 2), got {xy.shape}"
                )
            ax = axes[r, c]
            for d in classes:
                sel = labels == d
                ax.scatter(
                    xy[sel, 0],
                    xy[sel, 1],
                    s=point_size,
                    color=colors[d],
                    label=str(d),
                    alpha=0.8,
                    linewidths=0,
                )
            ax.set_title(f"{row_name}: {method}", fontsize=10)
            ax.set_xlabel(f"{method} 1")
            ax.set_ylabel(f"{method} 2")
            ax.set_xticks([])
            ax.set_yticks([])
    handles, names = axes[0, 0].get_legend_handles_labels()
    digits = all(0 <= c <= 9 for c in classes)
    fig.legend(
        handles,
        names,
        title="digit" if digits else "class",
        loc="center right",
        markerscale=4,
        frameon=False,
    )
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 0.93, 1))
    return fig


def plot_retrieval_grid(
    query_images: np.ndarray,
    query_labels: np.ndarray,
    reference_images: np.ndarray,
    reference_labels: np.ndarray,
    neighbours: np.ndarray,
    title: str = "Queries and their nearest references",
):
    """One row per query: the query, then its nearest references in order.

    A neighbour of another class than the query gets an orange (the
    colour-blind palette's vermilion) frame and its label in the same colour,
    so retrieval failures stand out.

    Parameters
    ----------
    query_images : numpy.ndarray
        Shape ``(Q, 28, 28)`` or ``(Q, 28, 28, 1)``.
    query_labels : numpy.ndarray
        Integer labels, shape ``(Q,)``.
    reference_images : numpy.ndarray
        Shape ``(N, 28, 28)`` or ``(N, 28, 28, 1)``.
    reference_labels : numpy.ndarray
        Integer labels, shape ``(N,)``.
    neighbours : numpy.ndarray
        Integer positions into the references, shape ``(Q, k)``, nearest first
        (e.g. from :func:`tripletutils.metrics.nearest_neighbours`).
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    _check_images_labels(query_images, query_labels)
    _check_images_labels(reference_images, reference_labels)
    if (
        not isinstance(neighbours, np.ndarray)
        or neighbours.ndim != 2
        or len(neighbours) != len(query_images)
        or not np.issubdtype(neighbours.dtype, np.integer)
    ):
        raise ValueError(
            f"neighbours must be an integer array of shape ({len(query_images)}, k), "
            "got "
            f"{getattr(neighbours, 'shape', type(neighbours).__name__)}"
        )
    if neighbours.size and (
        neighbours.min() < 0 or neighbours.max() >= len(reference_images)
    ):
        raise ValueError(
            f"neighbours must be positions in 0..{len(reference_images) - 1}"
        )
    q, k = neighbours.shape
    fig, axes = plt.subplots(
        q, k + 1, figsize=(0.9 * (k + 1), 1.0 * q + 0.6), squeeze=False
    )
    wrong = sns.color_palette("colorblind")[3]
    for r in range(q):
        row = [(query_images[r], query_labels[r], True)] + [
            (reference_images[j], reference_labels[j], False) for j in neighbours[r]
        ]
        for c, (img, lab, is_query) in enumerate(row):
            ax = axes[r, c]
            ax.imshow(_img(img), cmap="gray_r")
            ax.set_xticks([])
            ax.set_yticks([])
            miss = not is_query and lab != query_labels[r]
            for spine in ax.spines.values():
                spine.set_edgecolor(wrong if miss else "0.8")
                spine.set_linewidth(2.5 if miss else 0.8)
            ax.set_xlabel(str(lab), fontsize=8, color=wrong if miss else "black")
            if r == 0:
                ax.set_title("query" if is_query else f"#{c}", fontsize=9)
    fig.supxlabel(
        "nearest references, in order (label below; red: another class)", fontsize=9
    )
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
