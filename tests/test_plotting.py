import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest

from tripletutils.plotting import (
    class_colors,
    digit_palette,
    plot_digit_grid,
    plot_embedding_maps,
    plot_retrieval_grid,
    plot_triplets,
)


def test_plots_return_figures_with_titles(tiny_data):
    x, y = tiny_data(40)
    fig = plot_digit_grid(x, y, per_class=3)
    assert fig._suptitle.get_text() == "MNIST digits by class"
    t = np.array([[0, 4, 1], [1, 5, 2]])
    fig = plot_triplets(x, y, t, rows=[0, 1])
    assert [ax.get_title() for ax in fig.axes[:3]] == ["anchor", "positive", "negative"]
    labels = np.arange(20) % 10
    xy = np.random.default_rng(0).random((20, 2))
    fig = plot_embedding_maps(
        {"a": {"PCA": xy, "UMAP": xy}, "b": {"PCA": xy, "UMAP": xy}}, labels
    )
    assert len(fig.axes) == 4 and fig.legends
    assert len(digit_palette()) == 10


def test_plots_reject_bad_input(tiny_data):
    x, y = tiny_data(40)
    with pytest.raises(ValueError, match="labels must be"):
        plot_digit_grid(x, y[:3])
    with pytest.raises(ValueError, match="rows must be"):
        plot_triplets(x, y, np.array([[0, 4, 1]]), rows=[3])
    with pytest.raises(ValueError, match="shape"):
        plot_embedding_maps({"a": {"PCA": np.zeros((3, 2))}}, np.arange(4))


def test_retrieval_grid_marks_wrong_neighbours(tiny_data):
    x, y = tiny_data(12)
    nn = np.array(
        [[4, 1, 8], [5, 9, 2]]
    )  # y = i % 4: query 0 (class 0): 4 ok, 1 wrong, 8 ok
    fig = plot_retrieval_grid(x[:2], y[:2], x, y, nn, title="t")
    axes = np.array(fig.axes).reshape(2, 4)
    assert fig._suptitle.get_text() == "t"
    red = [ax.spines["left"].get_linewidth() > 2 for ax in axes[0]]
    assert red == [False, False, True, False]
    assert [ax.get_xlabel() for ax in axes[0]] == ["0", "0", "1", "0"]
    with pytest.raises(ValueError, match="neighbours"):
        plot_retrieval_grid(x[:2], y[:2], x, y, np.array([[0, 99], [1, 2]]))
    with pytest.raises(ValueError, match="neighbours"):
        plot_retrieval_grid(x[:2], y[:2], x, y, nn[:1])


def _map_colors(fig):
    """Each legend label of an embedding map and the colour of its points."""
    ax = fig.axes[0]
    return {
        c.get_label(): tuple(np.round(c.get_facecolor()[0][:3], 6))
        for c in ax.collections
    }


def test_a_digit_has_its_colour_whichever_digits_are_shown():
    xy = np.random.default_rng(0).random((8, 2))
    palette = digit_palette(10)
    fig = plot_embedding_maps({"a": {"PCA": xy}}, np.array([6, 7, 8, 9] * 2))
    got = _map_colors(fig)
    assert set(got) == {"6", "7", "8", "9"}  # the unseen digits alone
    for d in (6, 7, 8, 9):  # the colour of digit d, not of rank d - 6
        assert got[str(d)] == tuple(np.round(palette[d], 6))
    assert class_colors([9, 2]) == {9: palette[9], 2: palette[2]}


def test_labels_outside_the_digits_are_drawn_not_dropped():
    xy = np.random.default_rng(0).random((6, 2))
    labels = np.array([3, 12, 12, 40, 3, 40])
    fig = plot_embedding_maps({"a": {"PCA": xy}}, labels)
    got = _map_colors(fig)
    assert set(got) == {"3", "12", "40"}  # every class, none dropped
    assert sum(len(c.get_offsets()) for c in fig.axes[0].collections) == 6
    assert len(set(got.values())) == 3  # told apart by colour
    assert fig.legends[0].get_title().get_text() == "class"


def test_class_colors_rejects_bad_input():
    with pytest.raises(TypeError, match="ints"):
        class_colors([1.5, 2])
    with pytest.raises(ValueError, match="distinct"):
        class_colors([1, 1])
    with pytest.raises(ValueError, match="at most 20"):
        class_colors(list(range(10, 31)))
    with pytest.raises(ValueError, match="1-D integer"):
        plot_embedding_maps({"a": {"PCA": np.zeros((2, 2))}}, np.array([0.5, 1.0]))
