"""Interactive views of embeddings: TensorBoard's projector and a Bokeh explorer.

Two ways to turn, zoom and point at embedded digits:

* :func:`write_projector_log` writes a log that TensorBoard's embedding projector
  reads (``tensorboard --logdir DIR``, or ``%tensorboard --logdir DIR`` in a
  notebook): the embeddings as a TensorFlow checkpoint, a metadata file (one row per
  point), a sprite image of the digits and the projector configuration, written with
  ``tensorboard.plugins.projector``.
* :func:`embedding_explorer` turns 2-D coordinates (a UMAP or t-SNE map of the
  embeddings), labels and the images into a Bokeh figure: hovering a point shows the
  digit, its label and its id, clicking a legend entry hides or shows a class, the
  toolbar pans and zooms. Its HTML carries BokehJS inline, so it works without a
  network: in JupyterLab, on Colab, in VS Code, in a saved HTML file and in a book.

Imports numpy, PIL, bokeh and (inside :func:`write_projector_log` only) tensorflow
and tensorboard; no other module of ``tripletutils``, so it can be copied alone.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping, Sequence

import bokeh
import numpy as np
from PIL import Image

__all__ = [
    "ProjectorLog",
    "sprite_image",
    "write_projector_log",
    "thumbnail_uris",
    "EmbeddingExplorer",
    "embedding_explorer",
]

# TensorBoard's projector reads sprites of at most 8192 x 8192 pixels.
MAX_SPRITE_SIDE = 8192
# The name tf.train.Checkpoint gives the variable saved as ``embedding=...``.
CHECKPOINT_TENSOR = "embedding/.ATTRIBUTES/VARIABLE_VALUE"
# seaborn's colour-blind-safe "colorblind" palette, the book's colours for digits 0-9.
COLORBLIND = (
    "#0173b2",
    "#de8f05",
    "#029e73",
    "#d55e00",
    "#cc78bc",
    "#ca9161",
    "#fbafe4",
    "#949494",
    "#ece133",
    "#56b4e9",
)
# One marker shape per group (for example seen / unseen), in sorted group order.
MARKERS = ("circle", "triangle", "square", "diamond", "inverted_triangle", "star")


# --------------------------------------------------------------------------- checks
def _describe(x: object) -> str:
    if isinstance(x, np.ndarray):
        return f"an array of shape {x.shape} and dtype {x.dtype}"
    return f"a {type(x).__name__}"


def _as_array(x: object, name: str) -> np.ndarray:
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be a numpy array, got {_describe(x)}")
    try:
        return np.asarray(x)
    except (ValueError, TypeError) as err:  # ragged lists and the like
        raise ValueError(f"{name} could not be turned into an array: {err}") from err


def _check_real(x: np.ndarray, name: str) -> None:
    if x.dtype == bool or not (
        np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)
    ):
        raise TypeError(
            f"{name} must hold real numbers (integer or float dtype), got dtype "
            f"{x.dtype}"
        )


def _check_points(x: object, name: str, dim: int | None) -> np.ndarray:
    """(N, D) finite real array; D == dim when dim is given."""
    x = _as_array(x, name)
    _check_real(x, name)
    expected = f"(N, {dim})" if dim else "(N, D)"
    if x.ndim != 2 or (dim is not None and x.shape[1] != dim):
        raise ValueError(f"{name} must have shape {expected}, got shape {x.shape}")
    if len(x) == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must hold at least one point, got shape {x.shape}")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(
            f"{name} must be finite; {len(rows)} of {len(x)} rows hold NaN or inf "
            f"(first rows: {rows[:5].tolist()})"
        )
    return x


def _check_labels(labels: object, n: int, name: str = "labels") -> np.ndarray:
    labels = _as_array(labels, name)
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(
            f"{name} must be integers (one class per point), got {_describe(labels)}"
        )
    if labels.shape != (n,):
        raise ValueError(
            f"{name} must have shape ({n},), one per point, got shape {labels.shape}"
        )
    return labels.astype(np.int64)


def _check_images(images: object, n: int | None) -> np.ndarray:
    """(N, H, W) or (N, H, W, 1), uint8 or float in [0, 1] -> uint8 (N, H, W)."""
    images = _as_array(images, "images")
    _check_real(images, "images")
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or min(images.shape[1:], default=0) < 1:
        raise ValueError(
            "images must have shape (N, H, W) or (N, H, W, 1), got shape "
            f"{images.shape}"
        )
    if n is not None and len(images) != n:
        raise ValueError(
            f"images and the points do not match: {len(images)} images for {n} points"
        )
    if np.issubdtype(images.dtype, np.integer):
        low, high = images.min(initial=0), images.max(initial=0)
        if low < 0 or high > 255:
            raise ValueError(
                f"integer images must lie in [0, 255], got values in [{low}, {high}]"
            )
        return images.astype(np.uint8)
    if not np.isfinite(images).all():
        raise ValueError("images must be finite, got NaN or inf pixels")
    low, high = float(images.min(initial=0)), float(images.max(initial=0))
    if low < 0 or high > 1:
        raise ValueError(
            f"float images must lie in [0, 1], got values in [{low:g}, {high:g}] "
            "(divide by 255, or pass uint8 images)"
        )
    return np.round(images * 255).astype(np.uint8)


def _check_ids(ids: object, n: int) -> np.ndarray:
    if ids is None:
        return np.arange(n, dtype=np.int64)
    return _check_labels(ids, n, name="ids")


def _check_column(values: object, n: int, name: str) -> list[str]:
    values = _as_array(values, name)
    if values.shape != (n,):
        raise ValueError(
            f"{name} must have shape ({n},), one per point, got shape {values.shape}"
        )
    if values.dtype.kind not in "iuUO" or values.dtype == bool:
        raise TypeError(f"{name} must hold strings or integers, got {values.dtype}")
    text = [str(v) for v in values.tolist()]
    if any("\t" in t or "\n" in t or "\r" in t for t in text):
        raise ValueError(f"{name} must not contain tabs or line breaks")
    return text


# ------------------------------------------------------------------ projector log
@dataclass(frozen=True)
class ProjectorLog:
    """What :func:`write_projector_log` wrote.

    Its fields: ``logdir``, the directory (a ``pathlib.Path``) that holds the rest,
    which ``tensorboard --logdir logdir`` opens; ``config_path``, ``metadata_path``
    and ``sprite_path``, the paths of ``projector_config.pbtxt``, ``metadata.tsv``
    (a header row, then one row per point) and ``sprite.png`` (the digits on a
    square grid, row by row); ``tensor_name`` (str), the tensor's name in the
    checkpoint and in the projector's menu; ``shape``, ``(N, D)``: points and
    embedding dimensions.
    """

    logdir: Path
    config_path: Path
    metadata_path: Path
    sprite_path: Path
    tensor_name: str
    shape: tuple


def sprite_image(images: np.ndarray, *, invert: bool = True) -> Image.Image:
    """Tile images into one square sprite, as TensorBoard's projector expects.

    Image ``i`` lands in row ``i // side`` and column ``i % side`` of a grid with
    ``side = ceil(sqrt(N))`` cells per row; unused cells stay blank.

    Parameters
    ----------
    images : np.ndarray, shape (N, H, W) or (N, H, W, 1)
        uint8 in [0, 255] or float in [0, 1].
    invert : bool, default True
        Dark digits on a white background (MNIST stores white on black), easier to
        read on the projector's white canvas.

    Returns
    -------
    PIL.Image.Image
        Mode ``"L"`` (8-bit grey), ``side * W`` by ``side * H`` pixels.

    Raises
    ------
    ValueError
        Wrong shape, values out of range, or a sprite over 8192 pixels a side.
    TypeError
        Images that are not numbers.
    """
    pixels = _check_images(images, None)
    n, h, w = pixels.shape
    side = math.ceil(math.sqrt(n))
    if side * max(h, w) > MAX_SPRITE_SIDE:
        raise ValueError(
            f"{n} images of {h} x {w} pixels need a sprite of {side * w} x {side * h} "
            f"pixels; TensorBoard reads at most {MAX_SPRITE_SIDE} a side: pass at most "
            f"{(MAX_SPRITE_SIDE // max(h, w)) ** 2} images"
        )
    if invert:
        pixels = 255 - pixels
    background = 255 if invert else 0
    grid = np.full((side * side, h, w), background, dtype=np.uint8)
    grid[:n] = pixels
    grid = grid.reshape(side, side, h, w).transpose(0, 2, 1, 3).reshape(side * h, -1)
    return Image.fromarray(grid, mode="L")


def write_projector_log(
    logdir: str | Path,
    embeddings: np.ndarray,
    labels: np.ndarray,
    images: np.ndarray,
    *,
    ids: np.ndarray | None = None,
    metadata: Mapping[str, Sequence] | None = None,
    invert: bool = True,
) -> ProjectorLog:
    """Write an embedding projector log that TensorBoard opens.

    The directory gets the embeddings as a TensorFlow checkpoint
    (``tf.train.Checkpoint(embedding=...)``), ``metadata.tsv`` (columns ``label``,
    ``id`` and the ``metadata`` columns; the projector labels points by the first),
    ``sprite.png`` (see
    :func:`sprite_image`), ``projector_config.pbtxt`` written by
    ``tensorboard.plugins.projector.visualize_embeddings`` with paths relative to the
    directory (so it can be moved), and an empty event file so that TensorBoard lists
    the directory as a run when it is opened through a parent directory. Writing
    again into the same directory replaces the log.

    Parameters
    ----------
    logdir : str or Path
        Directory to write into (created if needed).
    embeddings : np.ndarray, shape (N, D), real
        Finite; stored as float32.
    labels : np.ndarray, shape (N,), int
        The class of each point (the projector colours and searches by it).
    images : np.ndarray, shape (N, H, W) or (N, H, W, 1)
        uint8 in [0, 255] or float in [0, 1]; N * H * W must fit a sprite of
        8192 x 8192 pixels (85,264 MNIST digits).
    ids : np.ndarray, shape (N,), int, optional
        Each point's id, e.g. its index in the test set; default ``0 .. N-1``.
    metadata : mapping of str to sequence of length N, optional
        Extra metadata columns, e.g. ``{"split": ["seen", ..., "unseen"]}``;
        strings or integers without tabs or line breaks.
    invert : bool, default True
        Dark digits on white in the sprite.

    Returns
    -------
    ProjectorLog
        The paths written, the tensor's name and its shape.

    Raises
    ------
    ValueError
        Shapes or lengths that do not match, non-finite embeddings, images out of
        range, bad metadata names or values.
    TypeError
        Arguments of the wrong type.
    """
    if not isinstance(logdir, (str, Path)):
        raise TypeError(f"logdir must be a str or Path, got {type(logdir).__name__}")
    vectors = _check_points(embeddings, "embeddings", None)
    n = len(vectors)
    labels = _check_labels(labels, n)
    pixels = _check_images(images, n)
    sprite = sprite_image(pixels, invert=invert)
    columns = {"label": labels.tolist(), "id": _check_ids(ids, n).tolist()}
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise TypeError(
                f"metadata must be a mapping of column name to values, got "
                f"{type(metadata).__name__}"
            )
        for name, values in metadata.items():
            if (
                not isinstance(name, str)
                or not name.strip()
                or name in columns
                or any(c in name for c in "\t\n\r")
            ):
                raise ValueError(
                    "metadata column names must be new, non-empty strings without "
                    f"tabs or line breaks, other than {sorted(columns)}; got {name!r}"
                )
            columns[name] = _check_column(values, n, f"metadata[{name!r}]")

    import tensorflow as tf
    from tensorboard.plugins import projector

    logdir = Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    metadata_path = logdir / "metadata.tsv"
    rows = ["\t".join(columns)]
    rows += ["\t".join(str(c[i]) for c in columns.values()) for i in range(n)]
    metadata_path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    sprite_path = logdir / "sprite.png"
    sprite.save(sprite_path)

    variable = tf.Variable(vectors.astype(np.float32), name="embedding")
    tf.train.Checkpoint(embedding=variable).save(str(logdir / "embedding.ckpt"))
    config = projector.ProjectorConfig()
    info = config.embeddings.add()
    info.tensor_name = CHECKPOINT_TENSOR
    info.metadata_path = metadata_path.name
    info.sprite.image_path = sprite_path.name
    height, width = pixels.shape[1:]
    info.sprite.single_image_dim.extend([width, height])
    projector.visualize_embeddings(str(logdir), config)
    if not any(logdir.glob("events.out.tfevents.*")):
        writer = tf.summary.create_file_writer(str(logdir))
        writer.flush()
        writer.close()
    return ProjectorLog(
        logdir=logdir,
        config_path=logdir / "projector_config.pbtxt",
        metadata_path=metadata_path,
        sprite_path=sprite_path,
        tensor_name=CHECKPOINT_TENSOR,
        shape=tuple(vectors.shape),
    )


# ------------------------------------------------------------------------ explorer
def thumbnail_uris(images: np.ndarray, *, invert: bool = True) -> list[str]:
    """Each image as a small grey PNG in a ``data:`` URI, for HTML tooltips.

    Parameters
    ----------
    images : np.ndarray, shape (N, H, W) or (N, H, W, 1)
        uint8 in [0, 255] or float in [0, 1].
    invert : bool, default True
        Dark digits on white.

    Returns
    -------
    list of str
        ``"data:image/png;base64,..."``, one per image (about 400 characters for a
        28 x 28 MNIST digit).

    Raises
    ------
    ValueError
        Wrong shape or values out of range.
    TypeError
        Images that are not numbers.
    """
    pixels = _check_images(images, None)
    if invert:
        pixels = 255 - pixels
    uris = []
    for image in pixels:
        buffer = io.BytesIO()
        Image.fromarray(image, mode="L").save(buffer, format="PNG", optimize=True)
        uris.append(
            "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
        )
    return uris


_TOOLTIP = """
<div class="explorer-tooltip" style="display:flex;gap:8px;align-items:center">
  <img class="explorer-digit" src="@image" width="56" height="56" alt="digit @label"
       style="image-rendering:pixelated;border:1px solid #bbb">
  <div style="font-size:13px;line-height:1.4">
    <div>label <b class="explorer-label">@label</b></div>
    <div>id <span class="explorer-id">@id</span></div>
    {group}
  </div>
</div>
"""

# Runs where the output lands: finds its target next to itself (document.currentScript
# also works in JupyterLab, which re-creates the script tags of an HTML output), waits
# until the target is in the page and BokehJS is loaded, then embeds the figure.
_EMBED_JS = """
(function () {
  const script = document.currentScript;
  const scope = (script && script.parentNode) || document;
  const target = scope.querySelector('[data-explorer-id="%(uid)s"]');
  const data = scope.querySelector('[data-explorer-json="%(uid)s"]');
  let tries = 0;
  function embed() {
    const B = window.Bokeh && (window.Bokeh["%(version)s"] || window.Bokeh);
    if (!B || !B.embed || !target.isConnected) {
      if (++tries < 400) { setTimeout(embed, 25); return; }
      target.textContent = "The embedding explorer needs BokehJS %(version)s, " +
        "which did not load.";
      console.error("embedding explorer: BokehJS %(version)s did not load");
      return;
    }
    const fallback = target.querySelector(".explorer-fallback");
    if (fallback) { fallback.remove(); }
    B.embed.embed_item(JSON.parse(data.textContent), target);
  }
  embed();
})();
"""


class EmbeddingExplorer:
    """An interactive Bokeh map of embedded images (made by :func:`embedding_explorer`).

    In a notebook, ``display(explorer)`` (or the explorer as a cell's last
    expression) shows it through ``_repr_html_``, BokehJS inline.

    Attributes
    ----------
    figure
        The ``bokeh.plotting.figure``, to restyle or to pass to ``bokeh.io.show``.
    ids
        The ids of the points shown, in the order of the inputs (an int64
        ``np.ndarray`` of shape ``(n_points,)``).
    labels
        Their labels (the same kind of array).
    classes : tuple
        The distinct labels (ints), sorted: one legend entry each.
    groups : tuple
        The distinct groups (strs), sorted, one marker shape each; ``()`` without
        groups.
    """

    def __init__(
        self,
        figure: object,
        ids: np.ndarray,
        labels: np.ndarray,
        classes: tuple,
        groups: tuple,
    ) -> None:
        self.figure = figure
        self.ids = ids
        self.labels = labels
        self.classes = classes
        self.groups = groups

    @property
    def n_points(self) -> int:
        """Number of points shown (int)."""
        return len(self.ids)

    def __repr__(self) -> str:
        groups = f", groups {list(self.groups)}" if self.groups else ""
        return (
            f"EmbeddingExplorer({self.n_points} points, {len(self.classes)} classes"
            f"{groups})"
        )

    def to_html(self, bokehjs: Literal["inline", "cdn"] = "inline") -> str:
        """An HTML fragment that shows the explorer wherever scripts run.

        Parameters
        ----------
        bokehjs : {"inline", "cdn"}, default "inline"
            ``"inline"`` puts BokehJS (about 1.3 MB) in the fragment, inside
            ``<script data-bokehjs="VERSION">``, so it works offline; ``"cdn"``
            loads it from ``cdn.bokeh.org`` (small, needs a network).

        Returns
        -------
        str
            A ``<div>`` target, BokehJS, the figure as JSON and a script that embeds
            it into the target.

        Raises
        ------
        ValueError
            An unknown ``bokehjs``.
        """
        from bokeh.embed import json_item
        from bokeh.resources import CDN, Resources

        version = bokeh.__version__
        if bokehjs == "inline":
            (code,) = Resources(mode="inline", components=["bokeh"]).js_raw[:1]
            loader = (
                f'<script type="text/javascript" data-bokehjs="{version}">\n'
                f"{code}\n</script>"
            )
        elif bokehjs == "cdn":
            url = CDN.clone(components=["bokeh"]).js_files[0]
            loader = (
                f'<script type="text/javascript" data-bokehjs="{version}" '
                f'src="{html.escape(url)}"></script>'
            )
        else:
            raise ValueError(f'bokehjs must be "inline" or "cdn", got {bokehjs!r}')
        uid = uuid.uuid4().hex
        item = json.dumps(json_item(self.figure)).replace("</", "<\\/")
        return "\n".join(
            [
                f'<div class="embedding-explorer" data-explorer-id="{uid}">'
                '<p class="explorer-fallback">An interactive embedding explorer '
                "(Bokeh): it shows where its scripts run, for example in JupyterLab "
                "once the notebook is trusted or re-run, on Colab or in the book."
                "</p></div>",
                loader,
                f'<script type="application/json" data-explorer-json="{uid}">'
                f"{item}</script>",
                '<script type="text/javascript">'
                + _EMBED_JS % {"uid": uid, "version": version}
                + "</script>",
            ]
        )

    def _repr_html_(self) -> str:
        return self.to_html("inline")

    def save(
        self, path: str | Path, *, bokehjs: Literal["inline", "cdn"] = "inline"
    ) -> Path:
        """Write the explorer as a stand-alone HTML page.

        Parameters
        ----------
        path : str or Path
            The ``.html`` file to write (its folder must exist).
        bokehjs : {"inline", "cdn"}, default "inline"
            See :meth:`to_html`.

        Returns
        -------
        Path
            ``path``.

        Raises
        ------
        TypeError
            ``path`` not a str or Path.
        ValueError
            An unknown ``bokehjs``.
        """
        if not isinstance(path, (str, Path)):
            raise TypeError(f"path must be a str or Path, got {type(path).__name__}")
        title = html.escape(self.figure.title.text or "Embedding explorer")
        page = (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{title}</title>\n</head>\n<body>\n{self.to_html(bokehjs)}\n"
            "</body>\n</html>\n"
        )
        path = Path(path)
        path.write_text(page, encoding="utf-8")
        return path


def embedding_explorer(
    coords: np.ndarray,
    labels: np.ndarray,
    images: np.ndarray,
    *,
    ids: np.ndarray | None = None,
    groups: Sequence[str] | np.ndarray | None = None,
    max_points: int | None = 3000,
    seed: int = 0,
    title: str = "Embedding explorer",
    axis_labels: tuple[str, str] = ("dimension 1", "dimension 2"),
    width: int = 640,
    height: int = 480,
    point_size: float = 7.0,
) -> EmbeddingExplorer:
    """An interactive map of embedded images: hover, hide classes, pan and zoom.

    Every point is drawn at its 2-D coordinates in its class's colour (digits 0..9
    in the book's colour-blind-safe colour for each digit, the same as in
    :func:`tripletutils.plotting.plot_embedding_maps`, whichever digits are shown;
    other labels, up to 20, in Bokeh's Category20 by rank) and, with ``groups``, in its
    group's marker shape. Hovering a point shows its image (a PNG thumbnail embedded
    in the page), its label and its id; clicking a legend entry hides or shows that
    class; the toolbar pans, zooms (box or wheel) and resets.

    Parameters
    ----------
    coords : np.ndarray, shape (N, 2), real
        Finite 2-D positions, e.g. a UMAP or t-SNE map of the embeddings.
    labels : np.ndarray, shape (N,), int
        The class of each point (at most 20 classes).
    images : np.ndarray, shape (N, H, W) or (N, H, W, 1)
        uint8 in [0, 255] or float in [0, 1]; shown in the tooltip, dark on white.
    ids : np.ndarray, shape (N,), int, optional
        Each point's id (e.g. its index in the test set); default ``0 .. N-1``.
    groups : sequence of str, length N, optional
        A group per point, e.g. ``"seen"`` / ``"unseen"``: one marker shape per
        group (circle, triangle, square, ... in sorted group order), named in the
        tooltip and in the legend entries of classes that lie in one group only.
    max_points : int or None, default 3000
        Above this many points, a seeded random subset of ``max_points`` is shown
        (each point costs about 0.4 kB of page); ``None`` shows all.
    seed : int, default 0
        Seed of that subset.
    title : str, default "Embedding explorer"
    axis_labels : tuple of (str, str), default ("dimension 1", "dimension 2")
    width, height : int, default 640, 480
        Size of the figure in pixels, legend included.
    point_size : float, default 7.0
        Marker size in pixels.

    Returns
    -------
    EmbeddingExplorer
        The Bokeh figure with the ids, labels, classes and groups shown; displays
        itself in a notebook.

    Raises
    ------
    ValueError
        Shapes or lengths that do not match, non-finite coordinates, images out of
        range, too many classes or groups, bad sizes.
    TypeError
        Arguments of the wrong type.
    """
    from bokeh.models import ColumnDataSource, HoverTool, Legend, LegendItem
    from bokeh.palettes import Category20
    from bokeh.plotting import figure

    xy = _check_points(coords, "coords", 2)
    n = len(xy)
    labels = _check_labels(labels, n)
    pixels = _check_images(images, n)
    ids = _check_ids(ids, n)
    group_of = None if groups is None else _check_column(groups, n, "groups")
    if max_points is not None and (
        isinstance(max_points, bool)
        or not isinstance(max_points, int)
        or max_points < 1
    ):
        raise ValueError(
            f"max_points must be a positive int or None, got {max_points!r}"
        )
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 100:
            raise ValueError(
                f"{name} must be an int of at least 100 pixels, got {value!r}"
            )
    if not isinstance(title, str):
        raise TypeError(f"title must be a str, got {type(title).__name__}")
    if (
        not isinstance(axis_labels, (tuple, list))
        or len(axis_labels) != 2
        or not all(isinstance(a, str) for a in axis_labels)
    ):
        raise ValueError(f"axis_labels must be two strings, got {axis_labels!r}")
    if not np.isfinite(point_size) or point_size <= 0:
        raise ValueError(f"point_size must be a positive number, got {point_size!r}")

    keep = np.arange(n)
    if max_points is not None and n > max_points:
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(n, size=max_points, replace=False))
    xy, labels, pixels, ids = xy[keep], labels[keep], pixels[keep], ids[keep]
    group_of = None if group_of is None else [group_of[i] for i in keep]
    classes = tuple(int(c) for c in np.unique(labels))
    if all(0 <= c <= 9 for c in classes):  # a digit's colour in every figure
        palette = [COLORBLIND[c] for c in classes]
    elif len(classes) <= 20:  # by rank, as plotting.class_colors does
        palette = list(Category20[20][: len(classes)])
    else:
        raise ValueError(
            f"at most 20 classes can be told apart by colour, got {len(classes)}"
        )
    group_names = tuple(sorted(set(group_of))) if group_of is not None else ()
    if len(group_names) > len(MARKERS):
        raise ValueError(
            f"at most {len(MARKERS)} groups (marker shapes), got {len(group_names)}"
        )
    group_arr = np.array(group_of if group_of is not None else [""] * len(ids))
    uris = np.array(thumbnail_uris(pixels, invert=True))

    plot = figure(
        width=width,
        height=height,
        title=title,
        tools="pan,wheel_zoom,box_zoom,reset,save",
        active_drag="pan",
        toolbar_location="right",
        x_axis_label=axis_labels[0],
        y_axis_label=axis_labels[1],
        name="embedding-explorer",
    )
    items, renderers = [], []
    for k, cls in enumerate(classes):
        in_class = labels == cls
        class_renderers, class_groups = [], []
        for g, group in enumerate(group_names or ("",)):
            mask = in_class & (group_arr == group)
            if not mask.any():
                continue
            source = ColumnDataSource(
                {
                    "x": xy[mask, 0],
                    "y": xy[mask, 1],
                    "label": [str(cls)] * int(mask.sum()),
                    "id": ids[mask],
                    "image": uris[mask].tolist(),
                    "group": group_arr[mask].tolist(),
                }
            )
            renderer = plot.scatter(
                "x",
                "y",
                source=source,
                marker=MARKERS[g],
                size=point_size * (1.3 if g else 1.0),
                fill_color=palette[k],
                fill_alpha=0.75,
                line_color="#333333" if g else palette[k],
                line_alpha=0.9,
                hover_fill_alpha=1.0,
                hover_line_color="black",
                name=f"class {cls}" + (f" {group}" if group else ""),
                tags=[cls],
            )
            class_renderers.append(renderer)
            class_groups.append(group)
        suffix = (
            f" ({class_groups[0]})" if group_names and len(class_groups) == 1 else ""
        )
        items.append(LegendItem(label=f"{cls}{suffix}", renderers=class_renderers))
        renderers += class_renderers
    group_row = "<div>@group</div>" if group_names else ""
    plot.add_tools(
        HoverTool(renderers=renderers, tooltips=_TOOLTIP.format(group=group_row))
    )
    legend = Legend(
        items=items,
        click_policy="hide",
        title="click to hide",
        location="top_left",
        name="explorer-legend",
    )
    plot.add_layout(legend, "right")
    return EmbeddingExplorer(
        figure=plot,
        ids=ids,
        labels=labels,
        classes=classes,
        groups=group_names,
    )
