"""Graphs in compressed sparse row (CSR) form, the input of the random-walk kernels.

A :class:`CSRGraph` stores the out-edges of node ``i`` as
``indices[indptr[i]:indptr[i + 1]]`` (sorted, no duplicates), with optional
non-negative edge ``weights`` aligned with ``indices``. It is a pytree
(a ``NamedTuple``), so it passes through ``jax.jit`` and can be sharded or
closed over; its number of nodes is static (the length of ``indptr``).

Constructors build and validate on the host (numpy): :func:`from_edges`,
:func:`from_scipy` and :func:`from_networkx` (``networkx`` is optional).
:func:`karate_club` is shipped with the package (Zachary 1977; 34 nodes,
78 undirected edges), so examples and tests never download anything.

Example:
  >>> from jaxsampling.kernels import graphs
  >>> g = graphs.from_edges([0, 1, 1], [1, 0, 2], num_nodes=3)
  >>> g.num_nodes, g.num_edges, graphs.degrees(g).tolist()
  (3, 3, [1, 2, 0])
  >>> graphs.karate_club().num_edges  # both directions of 78 edges
  156
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from jaxsampling.types import Array, ArrayLike

__all__ = [
    "CSRGraph",
    "barabasi_albert",
    "degrees",
    "from_edges",
    "from_networkx",
    "from_scipy",
    "grid_2d",
    "karate_club",
    "validate",
    "weighted_degrees",
]


class CSRGraph(NamedTuple):
    """A directed graph in CSR form (an undirected graph stores both directions).

    Attributes:
      indptr: ``int32[num_nodes + 1]``, non-decreasing, ``indptr[0] = 0``.
      indices: ``int32[num_edges]`` targets, sorted and distinct within each row.
      weights: ``float[num_edges]`` non-negative edge weights, or ``None``
        (every edge weighs 1).
    """

    indptr: Array
    indices: Array
    weights: Array | None = None

    @property
    def num_nodes(self) -> int:
        """Number of nodes (static)."""
        return self.indptr.shape[0] - 1

    @property
    def num_edges(self) -> int:
        """Number of stored (directed) edges (static)."""
        return self.indices.shape[0]


def degrees(graph: CSRGraph) -> Array:
    """``int32[num_nodes]``: the out-degree of every node."""
    return jnp.diff(graph.indptr).astype(jnp.int32)


def weighted_degrees(graph: CSRGraph) -> Array:
    """``float[num_nodes]``: the sum of each node's out-edge weights (degrees if unweighted)."""
    if graph.weights is None:
        return degrees(graph).astype(jnp.float32)
    rows = jnp.repeat(
        jnp.arange(graph.num_nodes), jnp.diff(graph.indptr), total_repeat_length=graph.num_edges
    )
    return jnp.zeros(graph.num_nodes, graph.weights.dtype).at[rows].add(graph.weights)


def validate(graph: CSRGraph) -> CSRGraph:
    """Checks a concrete graph; returns it unchanged.

    Raises:
      ValueError: naming the field: ``indptr`` not 1-D integer, not starting
        at 0, decreasing or not ending at ``len(indices)``; ``indices`` out of
        ``[0, num_nodes)``, unsorted or repeated within a row; ``weights`` of
        the wrong shape, not floating, negative or not finite.
    """
    indptr = np.asarray(graph.indptr)
    indices = np.asarray(graph.indices)
    if indptr.ndim != 1 or indptr.size < 1 or not np.issubdtype(indptr.dtype, np.integer):
        raise ValueError(f"indptr must be a 1-D integer array, got {indptr.dtype}{indptr.shape}")
    if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(
            f"indices must be a 1-D integer array, got {indices.dtype}{indices.shape}"
        )
    if indptr[0] != 0 or indptr[-1] != indices.size or np.any(np.diff(indptr) < 0):
        raise ValueError(
            "indptr must start at 0, be non-decreasing and end at len(indices) = "
            f"{indices.size}; got start {indptr[0]}, end {indptr[-1]}"
        )
    n = indptr.size - 1
    if indices.size and (indices.min() < 0 or indices.max() >= n):
        bad = indices[(indices < 0) | (indices >= n)][0]
        raise ValueError(f"indices must lie in [0, num_nodes = {n}), found {bad}")
    rows = np.repeat(np.arange(n), np.diff(indptr))
    same_row = rows[1:] == rows[:-1]
    if np.any(same_row & (indices[1:] <= indices[:-1])):
        row = rows[1:][same_row & (indices[1:] <= indices[:-1])][0]
        raise ValueError(f"indices of row {row} must be sorted and distinct")
    if graph.weights is not None:
        w = np.asarray(graph.weights)
        if w.shape != indices.shape or not np.issubdtype(w.dtype, np.floating):
            raise ValueError(
                f"weights must be a float array of shape {indices.shape}, got {w.dtype}{w.shape}"
            )
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            bad = w[~(np.isfinite(w) & (w >= 0))][0]
            raise ValueError(f"weights must be finite and non-negative, found {bad}")
    return graph


def from_edges(
    senders: ArrayLike,
    receivers: ArrayLike,
    *,
    num_nodes: int | None = None,
    weights: ArrayLike | None = None,
    symmetric: bool = False,
) -> CSRGraph:
    """A :class:`CSRGraph` from an edge list ``senders[e] -> receivers[e]``.

    Args:
      senders: integer node ids.
      receivers: integer node ids, same length.
      num_nodes: default ``max id + 1``.
      weights: optional non-negative weight per edge.
      symmetric: also add every reverse edge (an undirected graph).

    Returns:
      The validated graph; a repeated edge is kept once, with its weights summed.

    Raises:
      ValueError: mismatched lengths, ids out of range, bad weights.
    """
    s = np.asarray(senders)
    r = np.asarray(receivers)
    if s.ndim != 1 or r.shape != s.shape:
        raise ValueError(
            f"senders and receivers must be 1-D of the same length, got {s.shape} and {r.shape}"
        )
    if s.size and not (np.issubdtype(s.dtype, np.integer) and np.issubdtype(r.dtype, np.integer)):
        raise ValueError(f"senders and receivers must be integers, got {s.dtype} and {r.dtype}")
    s, r = s.astype(np.int64), r.astype(np.int64)
    w = None if weights is None else np.asarray(weights, np.float32)
    if w is not None and w.shape != s.shape:
        raise ValueError(f"weights must have shape {s.shape}, got {w.shape}")
    if symmetric:
        s, r = np.concatenate([s, r]), np.concatenate([r, s])
        w = None if w is None else np.concatenate([w, w])
    if s.size and min(s.min(), r.min()) < 0:
        raise ValueError(f"node ids must be non-negative, found {min(s.min(), r.min())}")
    n = max(int(s.max(initial=-1)), int(r.max(initial=-1))) + 1
    if num_nodes is not None:
        if int(num_nodes) < max(n, 1):
            raise ValueError(f"num_nodes = {num_nodes} but the edges name node {n - 1}")
        n = int(num_nodes)
    if n < 1:
        raise ValueError("a graph needs at least one node (empty edge list and no num_nodes)")
    if w is not None and (not np.all(np.isfinite(w)) or np.any(w < 0)):
        raise ValueError("weights must be finite and non-negative")
    keys, first = np.unique(s * n + r, return_inverse=True)
    if w is not None:
        w = np.bincount(first, weights=w, minlength=keys.size).astype(np.float32)
    rows, cols = keys // n, keys % n
    indptr = np.zeros(n + 1, np.int64)
    np.add.at(indptr, rows + 1, 1)
    graph = CSRGraph(
        jnp.asarray(np.cumsum(indptr), jnp.int32),
        jnp.asarray(cols, jnp.int32),
        None if w is None else jnp.asarray(w),
    )
    return validate(graph)


def from_scipy(matrix: Any, *, weighted: bool = True) -> CSRGraph:
    """A :class:`CSRGraph` from a square scipy sparse matrix (entry ``(i, j)``: edge ``i -> j``).

    Explicitly stored entries are edges (their values the weights if
    ``weighted``); duplicates are summed.
    """
    import scipy.sparse

    if not scipy.sparse.issparse(matrix) or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"matrix must be a square scipy sparse matrix, got {type(matrix)}")
    coo = scipy.sparse.coo_matrix(matrix)
    return from_edges(
        coo.row,
        coo.col,
        num_nodes=matrix.shape[0],
        weights=np.asarray(coo.data, np.float32) if weighted else None,
    )


def from_networkx(g: Any, *, weight: str | None = None) -> CSRGraph:
    """A :class:`CSRGraph` from a networkx graph (nodes renumbered ``0..n-1`` in ``g.nodes`` order).

    An undirected graph gets both directions of every edge. ``weight`` names
    the edge attribute to use as weights (missing ones count 1); ``None``: unweighted.
    """
    ids = {node: i for i, node in enumerate(g.nodes)}
    edges = list(g.edges(data=True))
    s = np.array([ids[u] for u, _, _ in edges], np.int64)
    r = np.array([ids[v] for _, v, _ in edges], np.int64)
    w = None
    if weight is not None:
        w = np.array([float(d.get(weight, 1.0)) for _, _, d in edges], np.float32)
    return from_edges(
        s, r, num_nodes=max(len(ids), 1), weights=w, symmetric=not g.is_directed()
    )


#: Zachary's karate club (1977): 34 members, 78 friendships (undirected).
_KARATE_EDGES = (
    (0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (0, 6), (0, 7), (0, 8), (0, 10), (0, 11),
    (0, 12), (0, 13), (0, 17), (0, 19), (0, 21), (0, 31), (1, 2), (1, 3), (1, 7), (1, 13),
    (1, 17), (1, 19), (1, 21), (1, 30), (2, 3), (2, 7), (2, 8), (2, 9), (2, 13), (2, 27),
    (2, 28), (2, 32), (3, 7), (3, 12), (3, 13), (4, 6), (4, 10), (5, 6), (5, 10), (5, 16),
    (6, 16), (8, 30), (8, 32), (8, 33), (9, 33), (13, 33), (14, 32), (14, 33), (15, 32),
    (15, 33), (18, 32), (18, 33), (19, 33), (20, 32), (20, 33), (22, 32), (22, 33),
    (23, 25), (23, 27), (23, 29), (23, 32), (23, 33), (24, 25), (24, 27), (24, 31),
    (25, 31), (26, 29), (26, 33), (27, 33), (28, 31), (28, 33), (29, 32), (29, 33),
    (30, 32), (30, 33), (31, 32), (31, 33), (32, 33),
)


def karate_club() -> CSRGraph:
    """Zachary's karate club: 34 nodes, 78 undirected edges (156 stored), unweighted."""
    s, r = np.array(_KARATE_EDGES).T
    return from_edges(s, r, num_nodes=34, symmetric=True)


def grid_2d(rows: int, cols: int) -> CSRGraph:
    """The ``rows x cols`` grid graph (4-neighbour lattice), node ``r * cols + c``, unweighted.

    Example:
      >>> from jaxsampling.kernels import graphs
      >>> g = graphs.grid_2d(3, 4)
      >>> g.num_nodes, g.num_edges // 2, degrees(g)[:4].tolist()
      (12, 17, [2, 3, 3, 2])
    """
    if rows < 1 or cols < 1:
        raise ValueError(f"rows and cols must be >= 1, got {rows}, {cols}")
    ids = np.arange(rows * cols).reshape(rows, cols)
    s = np.concatenate([ids[:, :-1].ravel(), ids[:-1, :].ravel()])
    r = np.concatenate([ids[:, 1:].ravel(), ids[1:, :].ravel()])
    return from_edges(s, r, num_nodes=rows * cols, symmetric=True)


def barabasi_albert(num_nodes: int, m: int, seed: int = 0) -> CSRGraph:
    """A Barabasi-Albert preferential-attachment graph, generated on the host (numpy).

    Starts from ``m`` isolated nodes; each new node attaches to ``m``
    distinct existing nodes drawn with probability proportional to their
    degree (the repeated-nodes list of networkx's ``barabasi_albert_graph``,
    which it follows step by step but with numpy's generator, so the graphs
    differ). Undirected, unweighted, ``m (num_nodes - m)`` edges.

    Args:
      num_nodes: number of nodes, ``> m``.
      m: edges added with each new node, ``>= 1``.
      seed: seed of ``numpy.random.default_rng``.

    Example:
      >>> from jaxsampling.kernels import graphs
      >>> g = graphs.barabasi_albert(100, 3, seed=0)
      >>> g.num_nodes, g.num_edges // 2, int(degrees(g).min())
      (100, 291, 3)
    """
    if m < 1 or num_nodes <= m:
        raise ValueError(f"need m >= 1 and num_nodes > m, got num_nodes={num_nodes}, m={m}")
    rng = np.random.default_rng(seed)
    senders = np.empty(m * (num_nodes - m), np.int64)
    receivers = np.empty_like(senders)
    repeated = np.empty(2 * m * (num_nodes - m), np.int64)
    size = 0
    targets = np.arange(m)
    for new in range(m, num_nodes):
        e = (new - m) * m
        senders[e : e + m] = new
        receivers[e : e + m] = targets
        repeated[size : size + m] = targets
        repeated[size + m : size + 2 * m] = new
        size += 2 * m
        chosen: set[int] = set()
        while len(chosen) < m:
            chosen.update(repeated[rng.integers(0, size, m - len(chosen))].tolist())
        targets = np.fromiter(chosen, np.int64, m)
    return from_edges(senders, receivers, num_nodes=num_nodes, symmetric=True)
