import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest

from tripletutils.plotting import (
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
