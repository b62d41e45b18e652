"""tripletutils.glue: myst-nb's glue where it is installed, else a plain display."""

import builtins
import sys
import types

import pytest

from tripletutils import glue as G


def _without_myst_nb(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "myst_nb" or name.startswith("myst_nb."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "myst_nb", raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.setattr(
        G.importlib,
        "import_module",
        lambda name: fake_import(name) if name == "myst_nb" else None,
    )


def test_uses_myst_nb_when_it_is_there(monkeypatch):
    calls = []
    fake = types.ModuleType("myst_nb")
    fake.glue = lambda name, value, display=True: calls.append((name, value, display))
    monkeypatch.setitem(sys.modules, "myst_nb", fake)
    assert G.myst_nb_available()
    G.glue("p1", 0.25, display=False)
    G.glue("verdict", "better")
    assert calls == [("p1", 0.25, False), ("verdict", "better", True)]


def test_without_myst_nb_shows_only_what_is_displayed(monkeypatch, capsys):
    _without_myst_nb(monkeypatch)
    assert not G.myst_nb_available()
    G.glue("hidden", 0.125, display=False)
    assert capsys.readouterr().out == ""
    G.glue("shown", 0.375)
    assert "0.375" in capsys.readouterr().out


def test_the_chapters_glue_through_this_module():
    """A chapter opened alone has no myst-nb: it must not import it directly."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for nb in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        assert "from myst_nb import" not in nb.read_text(), nb.name


@pytest.mark.parametrize(
    "name, value, display, error",
    [
        (3, 1.0, True, TypeError),
        ("", 1.0, True, ValueError),
        ("a:b", 1.0, True, ValueError),
        ("a b", 1.0, True, ValueError),
        ("a`b", 1.0, True, ValueError),
        ("ok", 1.0, 1, TypeError),
    ],
)
def test_bad_input(name, value, display, error):
    with pytest.raises(error):
        G.glue(name, value, display=display)
