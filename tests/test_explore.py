"""tripletutils.explore: TensorBoard projector logs and the Bokeh embedding explorer.

The projector test starts a real TensorBoard on 127.0.0.1 and asks its projector
plugin for what a browser would load; the browser side of the explorer is tested in
tests/test_browser.py.
"""

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tripletutils.explore import (
    CHECKPOINT_TENSOR,
    COLORBLIND,
    EmbeddingExplorer,
    ProjectorLog,
    embedding_explorer,
    sprite_image,
    thumbnail_uris,
    write_projector_log,
)

ROOT = Path(__file__).resolve().parents[1]


def _digits(n=40, seed=0):
    """n fake 28 x 28 digits (uint8) with labels 0-9 and a 2-D map."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = np.arange(n) % 10
    coords = rng.normal(size=(n, 2)) + labels[:, None] * 3.0
    return coords, labels, images


# ------------------------------------------------------------------ sprite, thumbs
def test_sprite_places_image_i_at_row_i_div_side_col_i_mod_side():
    images = np.zeros((10, 28, 28), dtype=np.uint8)
    for i in range(10):
        images[i] = 20 * i + 5
    sprite = np.asarray(sprite_image(images, invert=False))
    side = 4  # ceil(sqrt(10))
    assert sprite.shape == (side * 28, side * 28)
    for i in range(10):
        r, c = divmod(i, side)
        assert (
            sprite[r * 28 : (r + 1) * 28, c * 28 : (c + 1) * 28] == 20 * i + 5
        ).all()
    assert (sprite[2 * 28 :, 2 * 28 :] == 0).all()  # the 6 unused cells stay blank


def test_sprite_inverts_floats_and_channel_axis():
    images = np.zeros((4, 28, 28, 1), dtype=np.float32)
    images[1] = 1.0
    sprite = np.asarray(sprite_image(images))
    assert sprite.shape == (56, 56)
    assert (sprite[:28, :28] == 255).all() and (sprite[:28, 28:] == 0).all()


def test_sprite_too_large_for_tensorboard():
    with pytest.raises(ValueError, match="at most 8192 a side: pass at most 85264"):
        sprite_image(np.zeros((85265, 28, 28), dtype=np.uint8))


@pytest.mark.parametrize(
    "images,error,message",
    [
        (np.zeros((3, 28)), ValueError, r"\(N, H, W\) or \(N, H, W, 1\), got shape"),
        (np.zeros((3, 28, 28, 3)), ValueError, r"got shape \(3, 28, 28, 3\)"),
        (np.full((2, 28, 28), 255.0), ValueError, r"float images must lie in \[0, 1\]"),
        (np.full((2, 28, 28), np.nan), ValueError, "must be finite"),
        (
            np.full((2, 28, 28), 300),
            ValueError,
            r"integer images must lie in \[0, 255\]",
        ),
        (np.zeros((2, 28, 28), dtype=bool), TypeError, "real numbers"),
        (np.full((2, 28, 28), "x"), TypeError, "real numbers"),
        ("images", TypeError, "must be a numpy array, got a str"),
    ],
)
def test_images_are_checked(images, error, message):
    with pytest.raises(error, match=message):
        sprite_image(images)
    with pytest.raises(error, match=message):
        thumbnail_uris(images)


def test_thumbnails_decode_to_the_inverted_digit():
    _, _, images = _digits(3)
    uris = thumbnail_uris(images)
    assert len(uris) == 3
    for uri, image in zip(uris, images):
        assert uri.startswith("data:image/png;base64,")
        png = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
        assert png.size == (28, 28)
        np.testing.assert_array_equal(np.asarray(png.convert("L")), 255 - image)


# ------------------------------------------------------------------- projector log
def test_projector_log_files(tmp_path):
    import tensorflow as tf
    from google.protobuf import text_format
    from tensorboard.plugins import projector

    coords, labels, images = _digits(30)
    embeddings = np.random.default_rng(1).normal(size=(30, 8))
    split = np.where(labels > 5, "unseen", "seen")
    log = write_projector_log(
        tmp_path / "run",
        embeddings,
        labels,
        images,
        ids=np.arange(100, 130),
        metadata={"split": split},
    )
    assert isinstance(log, ProjectorLog)
    assert log.shape == (30, 8) and log.tensor_name == CHECKPOINT_TENSOR
    rows = log.metadata_path.read_text().splitlines()
    assert rows[0] == "label\tid\tsplit"
    assert len(rows) == 31
    assert rows[7] == f"{labels[6]}\t106\tunseen"
    assert Image.open(log.sprite_path).size == (6 * 28, 6 * 28)
    config = text_format.Parse(log.config_path.read_text(), projector.ProjectorConfig())
    (info,) = config.embeddings
    assert info.tensor_name == CHECKPOINT_TENSOR
    assert info.metadata_path == "metadata.tsv"  # relative: the log can move
    assert info.sprite.image_path == "sprite.png"
    assert list(info.sprite.single_image_dim) == [28, 28]
    reader = tf.train.load_checkpoint(str(log.logdir))
    np.testing.assert_allclose(
        reader.get_tensor(CHECKPOINT_TENSOR), embeddings.astype(np.float32)
    )
    # writing again replaces the log and keeps a single event file
    write_projector_log(tmp_path / "run", embeddings[:20], labels[:20], images[:20])
    assert len(list((tmp_path / "run").glob("events.out.tfevents.*"))) == 1
    assert len(log.metadata_path.read_text().splitlines()) == 21
    reader = tf.train.load_checkpoint(str(log.logdir))
    assert reader.get_tensor(CHECKPOINT_TENSOR).shape == (20, 8)


@pytest.mark.parametrize(
    "change,error,message",
    [
        (
            {"embeddings": np.zeros(30)},
            ValueError,
            r"shape \(N, D\), got shape \(30,\)",
        ),
        ({"embeddings": np.zeros((0, 4))}, ValueError, "at least one point"),
        (
            {"embeddings": np.full((30, 4), np.inf)},
            ValueError,
            "30 of 30 rows hold NaN",
        ),
        ({"embeddings": np.zeros((30, 4), dtype=object)}, TypeError, "real numbers"),
        ({"labels": np.zeros(29, dtype=int)}, ValueError, r"shape \(30,\), one per"),
        ({"labels": np.zeros(30)}, TypeError, "labels must be integers"),
        ({"images": np.zeros((31, 28, 28))}, ValueError, "31 images for 30 points"),
        ({"ids": np.arange(3)}, ValueError, r"ids must have shape \(30,\)"),
        ({"metadata": [1, 2]}, TypeError, "metadata must be a mapping"),
        ({"metadata": {"split": ["a"] * 29}}, ValueError, r"'split'\] must have shape"),
        ({"metadata": {"split": ["a\tb"] * 30}}, ValueError, "tabs or line breaks"),
        ({"metadata": {"label": ["a"] * 30}}, ValueError, "column names must be new"),
        ({"metadata": {"split": np.zeros(30)}}, TypeError, "strings or integers"),
        ({"logdir": 3}, TypeError, "logdir must be a str or Path, got int"),
    ],
)
def test_projector_log_rejects_bad_input(tmp_path, change, error, message):
    _, labels, images = _digits(30)
    kwargs = dict(
        logdir=tmp_path, embeddings=np.zeros((30, 4)), labels=labels, images=images
    )
    kwargs.update(change)
    with pytest.raises(error, match=message):
        write_projector_log(**kwargs)
    assert not list(tmp_path.iterdir()), "nothing is written for bad input"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.headers.get("Content-Type", ""), response.read()


def test_tensorboard_projector_serves_the_log(tmp_path):
    """Start TensorBoard from the venv, ask its projector plugin what a browser asks."""
    tensorboard = Path(sys.executable).with_name("tensorboard")
    if not tensorboard.exists():
        pytest.skip(f"no tensorboard executable next to {sys.executable}")
    n = 300
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = np.arange(n) * 3 % 10
    for run, dim in (("seed", 16), ("best", 8)):
        write_projector_log(tmp_path / run, rng.normal(size=(n, dim)), labels, images)
    port = _free_port()
    started = time.monotonic()
    with open(tmp_path / "tensorboard.log", "wb") as log:
        process = subprocess.Popen(
            [str(tensorboard), "--logdir", str(tmp_path)]
            + ["--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, ended as a whole below
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
    base = f"http://127.0.0.1:{port}/data/plugin/projector"
    try:
        runs, deadline = [], started + 90
        while time.monotonic() < deadline and process.poll() is None:
            try:
                runs = json.loads(_get(f"{base}/runs", timeout=5)[1])
                if len(runs) == 2:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.25)
        ready = time.monotonic() - started
        assert process.poll() is None, (tmp_path / "tensorboard.log").read_text()
        assert sorted(runs) == ["best", "seed"], f"runs after {ready:.0f} s: {runs}"
        print(f"\nTensorBoard answered after {ready:.1f} s; runs: {sorted(runs)}")
        for run, dim in (("seed", 16), ("best", 8)):
            config = json.loads(_get(f"{base}/info?run={run}")[1])
            (info,) = config["embeddings"]
            assert info["tensorName"] == CHECKPOINT_TENSOR
            assert info["tensorShape"] == [n, dim]
            query = urllib.parse.urlencode({"run": run, "name": info["tensorName"]})
            tensor = np.frombuffer(_get(f"{base}/tensor?{query}")[1], dtype=np.float32)
            assert tensor.size == n * dim
            rows = _get(f"{base}/metadata?{query}")[1].decode().splitlines()
            assert rows[0] == "label\tid" and len(rows) == n + 1
            assert rows[1:4] == ["0\t0", "3\t1", "6\t2"]  # label, then id
            kind, png = _get(f"{base}/sprite_image?{query}")
            sprite = Image.open(io.BytesIO(png))
            assert kind == "image/png" and sprite.size == (18 * 28, 18 * 28)
            print(
                f"run {run}: tensor {tensor.reshape(n, dim).shape}, "
                f"{len(rows) - 1} metadata rows + header {rows[0]!r}, "
                f"sprite {sprite.size[0]} x {sprite.size[1]} px "
                f"({info['sprite']['singleImageDim']} per digit)"
            )
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    assert process.returncode is not None
    print(f"TensorBoard stopped; {time.monotonic() - started:.1f} s in all")


# ------------------------------------------------------------------------ explorer
def test_explorer_figure_points_legend_and_tooltips():
    from bokeh.models import HoverTool, Legend

    coords, labels, images = _digits(40)
    groups = np.where(labels >= 6, "unseen", "seen")
    ex = embedding_explorer(
        coords, labels, images, ids=np.arange(40) + 1000, groups=groups
    )
    assert isinstance(ex, EmbeddingExplorer)
    assert ex.n_points == 40 and ex.classes == tuple(range(10))
    assert ex.groups == ("seen", "unseen")
    assert (
        repr(ex)
        == "EmbeddingExplorer(40 points, 10 classes, groups ['seen', 'unseen'])"
    )
    (legend,) = ex.figure.select(type=Legend)
    assert legend.click_policy == "hide"
    assert [i.label["value"] for i in legend.items][5:7] == ["5 (seen)", "6 (unseen)"]
    (hover,) = ex.figure.select(type=HoverTool)
    assert "@image" in hover.tooltips and "@label" in hover.tooltips
    seen, unseen = set(), set()
    for item, cls in zip(legend.items, range(10)):
        (renderer,) = item.renderers
        data = renderer.data_source.data
        assert set(data["label"]) == {str(cls)}
        assert renderer.glyph.fill_color == COLORBLIND[cls]
        (seen if cls < 6 else unseen).add(renderer.glyph.marker)
        # the tooltip of point id 1000 + i shows image i, inverted
        for point_id, uri in zip(data["id"], data["image"]):
            png = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
            np.testing.assert_array_equal(
                np.asarray(png), 255 - images[point_id - 1000]
            )
    assert seen == {"circle"} and unseen == {"triangle"}
    assert sum(len(r.data_source.data["x"]) for r in hover.renderers) == 40


def test_explorer_colours_a_digit_as_the_maps_do():
    coords, labels, images = _digits(40)
    keep = labels >= 6  # the unseen digits alone: 6..9, not ranks 0..3
    ex = embedding_explorer(coords[keep], labels[keep], images[keep])
    assert ex.classes == (6, 7, 8, 9)
    fills = {}
    for r in ex.figure.renderers:
        data = getattr(r, "data_source", None)
        if data is not None and len(data.data.get("label", [])):
            fills[int(data.data["label"][0])] = r.glyph.fill_color
    assert fills == {d: COLORBLIND[d] for d in (6, 7, 8, 9)}
    assert fills[6] == plotting_hex(6)


def plotting_hex(digit):
    """The plotting module's colour of a digit, as a hex string."""
    from matplotlib.colors import to_hex

    from tripletutils.plotting import class_colors

    return to_hex(class_colors([digit])[digit])


def test_explorer_keeps_a_seeded_subset():
    coords, labels, images = _digits(500)
    a = embedding_explorer(coords, labels, images, max_points=120, seed=3)
    b = embedding_explorer(coords, labels, images, max_points=120, seed=3)
    assert a.n_points == 120 and len(set(a.ids.tolist())) == 120
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.labels, labels[a.ids])
    assert embedding_explorer(coords, labels, images, max_points=None).n_points == 500


@pytest.mark.parametrize(
    "change,error,message",
    [
        ({"coords": np.zeros((40, 3))}, ValueError, r"\(N, 2\), got shape \(40, 3\)"),
        ({"coords": np.zeros(40)}, ValueError, r"\(N, 2\), got shape \(40,\)"),
        ({"coords": np.zeros((39, 2))}, ValueError, r"labels must have shape \(39,\)"),
        ({"coords": "xy"}, TypeError, "coords must be a numpy array, got a str"),
        ({"coords": np.full((40, 2), "a")}, TypeError, "real numbers"),
        ({"labels": np.arange(41)}, ValueError, r"shape \(40,\), one per point"),
        ({"labels": np.zeros(40)}, TypeError, "labels must be integers"),
        ({"images": np.zeros((39, 28, 28))}, ValueError, "39 images for 40 points"),
        ({"images": np.zeros((40, 784))}, ValueError, r"\(N, H, W\) or"),
        ({"ids": np.arange(4)}, ValueError, r"ids must have shape \(40,\)"),
        ({"groups": ["a"] * 39}, ValueError, r"groups must have shape \(40,\)"),
        ({"groups": [str(i % 7) for i in range(40)]}, ValueError, "at most 6 groups"),
        ({"labels": np.arange(40)}, ValueError, "at most 20 classes"),
        ({"max_points": 0}, ValueError, "max_points must be a positive int"),
        ({"width": 10}, ValueError, "width must be an int of at least 100"),
        ({"axis_labels": ("x",)}, ValueError, "axis_labels must be two strings"),
        ({"title": 3}, TypeError, "title must be a str"),
        ({"point_size": -1.0}, ValueError, "point_size must be a positive"),
    ],
)
def test_explorer_rejects_bad_input(change, error, message):
    coords, labels, images = _digits(40)
    kwargs = dict(coords=coords, labels=labels, images=images)
    kwargs.update(change)
    with pytest.raises(error, match=message):
        embedding_explorer(**kwargs)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_explorer_rejects_non_finite_coordinates(bad):
    coords, labels, images = _digits(40)
    coords[[3, 17]] = bad
    with pytest.raises(ValueError, match=r"2 of 40 rows hold NaN or inf \(first rows"):
        embedding_explorer(coords, labels, images)


def test_explorer_html_inline_and_cdn(tmp_path):
    import bokeh

    coords, labels, images = _digits(20)
    ex = embedding_explorer(coords, labels, images)
    inline = ex._repr_html_()
    assert (
        f'<script type="text/javascript" data-bokehjs="{bokeh.__version__}">' in inline
    )
    assert len(inline) > 1_000_000  # BokehJS itself
    assert inline.count("</script>") == 3  # BokehJS, the JSON, the embedding script
    cdn = ex.to_html("cdn")
    assert f'src="https://cdn.bokeh.org/bokeh/release/bokeh-{bokeh.__version__}' in cdn
    assert len(cdn) < 100_000
    with pytest.raises(ValueError, match='bokehjs must be "inline" or "cdn"'):
        ex.to_html("local")
    page = ex.save(tmp_path / "explorer.html")
    text = page.read_text()
    assert (
        text.startswith("<!DOCTYPE html>")
        and "<title>Embedding explorer</title>" in text
    )
    with pytest.raises(TypeError, match="path must be a str or Path"):
        ex.save(3)
