"""Nearest-neighbour search at scale: an embedding index on FAISS.

:class:`EmbeddingIndex` holds reference embeddings with their labels and
answers "which references are nearest to each query?", by plain Euclidean
distance, as :func:`tripletutils.metrics.nearest_neighbours` does, in one of
three kinds:

* ``"flat"``: exact search, every query against every reference (FAISS's
  ``IndexFlatL2``): the same neighbours as ``nearest_neighbours``.
* ``"ivf"``: an inverted file (``IndexIVFFlat``). k-means splits the
  references into ``nlist`` cells; a query is compared only with the
  references of its ``nprobe`` nearest cells. Approximate: a true neighbour in
  an unvisited cell is missed. ``nprobe = nlist`` is exact again.
* ``"hnsw"``: a hierarchical navigable small-world graph (``IndexHNSWFlat``),
  searched greedily from the top layer; ``ef_search`` candidates are kept per
  query. Approximate; larger ``ef_search`` is slower and closer to exact.

Distances are plain Euclidean (FAISS computes squared ones; their square root
is returned). ``nprobe`` and ``ef_search`` can be changed after building, to
trade speed for recall on the same index. An index is saved to one ``.npz``
file (written to a temporary file and renamed, so a failed save leaves no
partial file) and loaded back with :meth:`EmbeddingIndex.load`.

Bad input raises instead of answering: a NaN or inf embedding, a wrong
dimension, a ``k`` larger than the index, an empty index, a file that is not
an index.

Imports numpy and FAISS (``pip install faiss-cpu``, the package's ``search``
extra) only, so it can be copied alone.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from collections import namedtuple
from typing import Any, Optional, Union

import numpy as np

__all__ = ["KINDS", "EmbeddingIndex", "SearchResult"]

#: The kinds of index, exact (``flat``) and approximate (``ivf``, ``hnsw``).
KINDS = ("flat", "ivf", "hnsw")

_FORMAT = 1  # the version of the saved file's layout


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "tripletutils.search needs FAISS: pip install faiss-cpu "
            "(or the package's extra: pip install 'tripletutils[search]')"
        ) from error
    return faiss


SearchResult = namedtuple("SearchResult", ["distances", "indices", "labels"])
SearchResult.__doc__ = """The ``k`` nearest references of each query, nearest first.

Attributes
----------
distances
    ``numpy.ndarray`` of ``float32``, shape ``(Q, k)``: plain Euclidean;
    ``inf`` where an approximate index found fewer than ``k`` references.
indices
    ``numpy.ndarray`` of ``int64``, shape ``(Q, k)``: positions of the
    references in the order they were added; ``-1`` where none was found.
labels
    ``numpy.ndarray`` of ``int64``, shape ``(Q, k)``: the labels of those
    references; ``-1`` where none was found.
"""


def _check_int(value: Any, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _as_embeddings(x: Any, name: str, dim: Optional[int] = None) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(x).__name__}")
    if x.dtype == bool or not (
        np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)
    ):
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"{name} must have shape (n, dim), got {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(
            f"{name} has dimension {x.shape[1]}, the index holds dimension {dim}"
        )
    x = np.ascontiguousarray(x, dtype=np.float32)
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{name} holds NaN or inf in {int(bad.sum())} of {len(x)} rows "
            f"(the first is row {int(np.argmax(bad))})"
        )
    return x


def _as_labels(labels: Any, n: int) -> np.ndarray:
    if not isinstance(labels, np.ndarray):
        raise TypeError(f"labels must be a numpy array, got {type(labels).__name__}")
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must hold integers, got dtype {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(f"need one label per embedding: ({n},), got {labels.shape}")
    return labels.astype(np.int64)


class EmbeddingIndex:
    """Reference embeddings and their labels, searchable by Euclidean distance.

    Parameters
    ----------
    embeddings : numpy.ndarray
        Shape ``(N, dim)``, real numbers (stored as ``float32``), every row
        finite, ``N >= 1`` (``N >= nlist`` for ``"ivf"``, whose k-means is
        trained on them).
    labels : numpy.ndarray
        Integers, shape ``(N,)``.
    kind : {"flat", "ivf", "hnsw"}, default "flat"
        Exact search, an inverted file, or an HNSW graph (see the module).
    nlist : int, optional
        ``"ivf"`` only: k-means cells; default ``round(4 * sqrt(N))``, at most
        ``N``.
    nprobe : int, optional
        ``"ivf"`` only: cells visited per query, at most ``nlist``; default
        ``min(8, nlist)``.
    hnsw_m : int, optional
        ``"hnsw"`` only: links per node in the upper layers (twice as many in
        the bottom layer); default 32.
    ef_construction : int, optional
        ``"hnsw"`` only: candidates kept while inserting; default 40.
    ef_search : int, optional
        ``"hnsw"`` only: candidates kept while searching; default 64.
    seed : int, default 0
        ``"ivf"``: seeds k-means. The HNSW graph is built on one thread, so
        that the same references always give the same graph.

    Raises
    ------
    TypeError
        On an argument of the wrong type.
    ValueError
        On an unknown ``kind``, a wrong shape, NaN or inf, no embeddings,
        fewer embeddings than ``nlist``, a parameter out of range, or a
        parameter given for another kind (``nprobe`` for ``"flat"``...).
    ImportError
        Without FAISS.
    """

    def __init__(
        self,
        embeddings: np.ndarray,
        labels: np.ndarray,
        kind: str = "flat",
        *,
        nlist: Optional[int] = None,
        nprobe: Optional[int] = None,
        hnsw_m: Optional[int] = None,
        ef_construction: Optional[int] = None,
        ef_search: Optional[int] = None,
        seed: int = 0,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        x = _as_embeddings(embeddings, "embeddings")
        if len(x) == 0:
            raise ValueError("an index needs at least one embedding, got 0")
        y = _as_labels(labels, len(x))
        options = {
            "nlist": (nlist, "ivf"),
            "nprobe": (nprobe, "ivf"),
            "hnsw_m": (hnsw_m, "hnsw"),
            "ef_construction": (ef_construction, "hnsw"),
            "ef_search": (ef_search, "hnsw"),
        }
        for name, (value, owner) in options.items():
            if value is None:
                continue
            if owner != kind:
                raise ValueError(f"{name} applies to an {owner!r} index, not {kind!r}")
            _check_int(value, name)
        _check_int(seed, "seed", low=0)
        faiss = _faiss()
        dim = x.shape[1]
        self._params = {"kind": kind, "dim": dim}
        if kind == "flat":
            index = faiss.IndexFlatL2(dim)
        elif kind == "hnsw":
            hnsw_m = 32 if hnsw_m is None else int(hnsw_m)
            ef_construction = 40 if ef_construction is None else int(ef_construction)
            index = faiss.IndexHNSWFlat(dim, hnsw_m)
            index.hnsw.efConstruction = ef_construction
            self._params.update(hnsw_m=hnsw_m, ef_construction=ef_construction)
        else:
            if nlist is None:
                nlist = min(len(x), max(1, round(4 * np.sqrt(len(x)))))
            nlist = int(nlist)
            if nlist > len(x):
                raise ValueError(
                    f"an ivf index with nlist={nlist} needs at least {nlist} "
                    f"embeddings to train k-means, got {len(x)}"
                )
            if nprobe is not None and nprobe > nlist:  # before k-means, not after
                raise ValueError(f"nprobe must be at most nlist={nlist}, got {nprobe}")
            index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, nlist)
            index.cp.seed = int(seed)
            index.train(x)
            self._params.update(nlist=nlist, seed=int(seed))
        self._index = index
        self._labels = np.empty(0, dtype=np.int64)
        if kind == "ivf":
            self.nprobe = min(8, self._params["nlist"]) if nprobe is None else nprobe
        if kind == "hnsw":
            self.ef_search = 64 if ef_search is None else ef_search
        self._add(x, y)

    # -- building ---------------------------------------------------------- #
    def _add(self, x: np.ndarray, y: np.ndarray) -> None:
        if self.kind == "hnsw":  # one thread: the same graph on every run
            faiss = _faiss()
            threads = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
            try:
                self._index.add(x)
            finally:
                faiss.omp_set_num_threads(threads)
        else:
            self._index.add(x)
        self._labels = np.concatenate([self._labels, y])

    def add(self, embeddings: np.ndarray, labels: np.ndarray) -> None:
        """Add references after the ones already held (their positions follow).

        Parameters
        ----------
        embeddings : numpy.ndarray
            Shape ``(n, dim)``, real numbers, every row finite.
        labels : numpy.ndarray
            Integers, shape ``(n,)``.

        Raises
        ------
        TypeError, ValueError
            As the constructor; nothing is added then.
        """
        x = _as_embeddings(embeddings, "embeddings", dim=self.dim)
        self._add(x, _as_labels(labels, len(x)))

    # -- properties -------------------------------------------------------- #
    @property
    def kind(self) -> str:
        """``"flat"``, ``"ivf"`` or ``"hnsw"``."""
        return self._params["kind"]

    @property
    def dim(self) -> int:
        """The dimension of the embeddings."""
        return self._params["dim"]

    @property
    def labels(self) -> np.ndarray:
        """``int64`` labels of the references, shape ``(len(self),)`` (a copy)."""
        return self._labels.copy()

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def __repr__(self) -> str:
        knobs = {k: v for k, v in self._params.items() if k not in ("kind", "dim")}
        if self.kind == "ivf":
            knobs["nprobe"] = self.nprobe
        if self.kind == "hnsw":
            knobs["ef_search"] = self.ef_search
        extra = "".join(f", {k}={v}" for k, v in knobs.items())
        return f"EmbeddingIndex({self.kind!r}, {len(self)} x {self.dim}{extra})"

    @property
    def nlist(self) -> int:
        """``"ivf"``: the number of k-means cells."""
        if self.kind != "ivf":
            raise AttributeError(f"a {self.kind!r} index has no nlist")
        return int(self._params["nlist"])

    @property
    def nprobe(self) -> int:
        """``"ivf"``: cells visited per query (1 to ``nlist``); settable."""
        if self.kind != "ivf":
            raise AttributeError(f"a {self.kind!r} index has no nprobe")
        return int(self._index.nprobe)

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        if self.kind != "ivf":
            raise AttributeError(f"a {self.kind!r} index has no nprobe")
        _check_int(value, "nprobe")
        if value > self._params["nlist"]:
            raise ValueError(
                f"nprobe must be at most nlist={self._params['nlist']}, got {value}"
            )
        self._index.nprobe = int(value)

    @property
    def ef_search(self) -> int:
        """``"hnsw"``: candidates kept per query while searching; settable."""
        if self.kind != "hnsw":
            raise AttributeError(f"a {self.kind!r} index has no ef_search")
        return int(self._index.hnsw.efSearch)

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        if self.kind != "hnsw":
            raise AttributeError(f"a {self.kind!r} index has no ef_search")
        self._index.hnsw.efSearch = _check_int(value, "ef_search")

    def memory_bytes(self) -> int:
        """Bytes of the serialised FAISS index (vectors and structure).

        Returns
        -------
        int
            Divide by ``len(self)`` for the memory per reference.
        """
        return int(_faiss().serialize_index(self._index).nbytes)

    # -- searching --------------------------------------------------------- #
    def search(self, queries: np.ndarray, k: int = 1) -> SearchResult:
        """The ``k`` nearest references of each query.

        Parameters
        ----------
        queries : numpy.ndarray
            Shape ``(Q, dim)``, real numbers, every row finite.
        k : int, default 1
            ``1 <= k <= len(self)``.

        Returns
        -------
        SearchResult
            ``distances``, ``indices`` and ``labels``, each ``(Q, k)``.

        Raises
        ------
        TypeError, ValueError
            On bad queries or ``k``.
        """
        q = _as_embeddings(queries, "queries", dim=self.dim)
        _check_int(k, "k")
        if k > len(self):
            raise ValueError(f"k must be at most the {len(self)} references, got {k}")
        squared, indices = self._index.search(q, int(k))
        indices = indices.astype(np.int64)
        found = indices >= 0
        distances = np.full(indices.shape, np.inf, dtype=np.float32)
        distances[found] = np.sqrt(np.maximum(squared[found], 0.0))
        labels = np.full(indices.shape, -1, dtype=np.int64)
        labels[found] = self._labels[indices[found]]
        return SearchResult(distances, indices, labels)

    # -- saving ------------------------------------------------------------ #
    def save(self, path: Union[str, os.PathLike]) -> Path:
        """Write the index and its labels to one ``.npz`` file.

        The file is written beside ``path`` under a temporary name and then
        renamed, so a failure leaves no partial file (and an older file at
        ``path`` intact).

        Parameters
        ----------
        path : str or os.PathLike
            Where to write; its folder must exist.

        Returns
        -------
        pathlib.Path
            ``path``.
        """
        path = Path(path)
        if not path.parent.is_dir():
            raise ValueError(f"no folder {path.parent} to save {path.name} in")
        params = dict(self._params)
        if self.kind == "ivf":
            params["nprobe"] = self.nprobe
        if self.kind == "hnsw":
            params["ef_search"] = self.ef_search
        buffer = io.BytesIO()
        np.savez(
            buffer,
            format=np.int64(_FORMAT),
            params=np.frombuffer(json.dumps(params).encode(), dtype=np.uint8),
            index=_faiss().serialize_index(self._index),
            labels=self._labels,
        )
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(buffer.getvalue())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "EmbeddingIndex":
        """Read an index written by :meth:`save`.

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        EmbeddingIndex

        Raises
        ------
        FileNotFoundError
            If there is no file at ``path``.
        ValueError
            If the file is not an index saved by :meth:`save` (truncated,
            corrupt, another layout), naming the file and the reason.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no index file at {path}")
        faiss = _faiss()
        try:
            with np.load(path, allow_pickle=False) as data:
                if int(data["format"]) != _FORMAT:
                    raise ValueError(f"layout {int(data['format'])}, not {_FORMAT}")
                params = json.loads(bytes(data["params"]).decode())
                index = faiss.deserialize_index(data["index"])
                labels = data["labels"].astype(np.int64)
            classes = {
                "flat": faiss.IndexFlatL2,
                "ivf": faiss.IndexIVFFlat,
                "hnsw": faiss.IndexHNSWFlat,
            }
            kind = params["kind"]
            if kind not in KINDS or not isinstance(index, classes[kind]):
                raise ValueError(f"a {type(index).__name__} saved as kind {kind!r}")
            if index.d != params["dim"]:
                raise ValueError(f"dimension {index.d}, saved as {params['dim']}")
            if labels.shape != (index.ntotal,):
                raise ValueError(
                    f"{labels.shape[0]} labels for {index.ntotal} references"
                )
            loaded = cls.__new__(cls)
            loaded._params = {
                k: v for k, v in params.items() if k not in ("nprobe", "ef_search")
            }
            loaded._index, loaded._labels = index, labels
            if kind == "ivf":
                loaded.nprobe = params["nprobe"]
            if kind == "hnsw":
                loaded.ef_search = params["ef_search"]
        except Exception as error:  # zip, JSON, key, FAISS or value errors alike
            raise ValueError(
                f"{path} is not an EmbeddingIndex file ({type(error).__name__}: "
                f"{error})"
            ) from error
        return loaded
