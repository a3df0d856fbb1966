"""Random walks on CSR graphs: many walkers at once, static length.

Every sampler takes ``starts`` (``int[num_walkers]``, one walker per entry) and
a static ``length`` and returns ``int32[num_walkers, length + 1]``, the visited
nodes with ``out[:, 0] = starts``. All walkers advance together, one batch of
random numbers per step, so the cost of a step is a few gathers per walker.

* :func:`uniform`: ``X_{t+1}`` uniform among the out-neighbours of ``X_t``;
  optional restart to the walker's start with probability ``restart_prob``.
* :func:`weighted`: ``P(X_{t+1} = j | X_t = i) = w_ij / sum_k w_ik``, by
  inverse CDF on per-row cumulative weights (:func:`cumulative_weights`, built
  once; a binary search in the row, ``O(log degree)``).
* :func:`metropolis_hastings`: propose a uniform neighbour ``j`` of ``i``,
  accept with probability ``min(1, pi_j d_i / (pi_i d_j))``; the chain is
  reversible with stationary law ``pi`` (uniform by default) on an undirected
  graph. :func:`metropolis_hastings_probabilities` gives its transition matrix.
* :func:`non_backtracking`: uniform among the neighbours other than the node
  just left (it backtracks only from a node of degree 1).
* :func:`node2vec`: the second-order walk of Grover & Leskovec (2016):
  ``P(X_{t+1} = x | X_t = v, X_{t-1} = u) ∝ w_vx * a(u, x)`` with
  ``a = 1/p`` if ``x = u``, ``1`` if ``x`` is a neighbour of ``u``, ``1/q``
  otherwise. ``method="rejection"`` (default; KnightKing, Yang et al. 2019)
  proposes ``x ∝ w_vx`` and accepts with ``a / max(1/p, 1, 1/q)``, each walker
  advancing on its own, so a step costs ``O(log degree)`` whatever the
  degree; ``method="exact"`` draws from the normalised law by a Gumbel-max
  over the row, read in chunks of :data:`CHUNK` (``O(degree log degree)``).
  Both are exact in law for every ``p, q > 0``.

**Dangling nodes** (no out-edges, or only zero-weight ones for
:func:`weighted`): ``dangling="error"`` (default) raises ``ValueError`` when
the graph is concrete and has one; under ``jax.jit`` with a traced graph a
walker that reaches one is marked: the rest of its row is ``-1``.
``"stay"`` keeps the walker there, ``"restart"`` sends it back to its start.
A start node out of ``[0, num_nodes)`` raises when concrete; under jit its
walk is all ``-1``.

**Sharding.** ``starts`` may be sharded over a mesh axis (explicit or auto);
the graph is replicated, the walks come back sharded like ``starts`` and equal
the unsharded ones (random numbers are drawn for the whole batch,
threefry-partitionable). The only collective is the ``any`` that ends the
``while`` loops (binary searches, node2vec rejection).

:func:`cooccurrence` counts the ordered pairs ``(walk[t], walk[t + k])``,
``1 <= k <= window`` (and their reverses), the skip-gram input of DeepWalk
and node2vec, as a sparse padded COO.

Example:
  >>> import jax
  >>> from jaxsampling.kernels import graphs, walks
  >>> g = graphs.karate_club()
  >>> w = walks.uniform(jax.random.key(0), g, jax.numpy.arange(34), 10)
  >>> w.shape, w.dtype
  ((34, 11), dtype('int32'))
  >>> bool(walks.follows_edges(g, w))
  True
  >>> n2v = walks.node2vec(jax.random.key(1), g, jax.numpy.arange(34), 10, p=0.5, q=2.0)
  >>> bool(walks.follows_edges(g, n2v))
  True
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import PartitionSpec as P

from jaxsampling import sharding
from jaxsampling.kernels import _args
from jaxsampling.kernels.graphs import CSRGraph
from jaxsampling.types import Array, ArrayLike, PRNGKey

__all__ = [
    "CHUNK",
    "Cooccurrence",
    "cooccurrence",
    "cooccurrence_matrix",
    "cumulative_weights",
    "follows_edges",
    "metropolis_hastings",
    "metropolis_hastings_probabilities",
    "node2vec",
    "non_backtracking",
    "uniform",
    "weighted",
]

Dangling = Literal["error", "stay", "restart"]
_DANGLING = ("error", "stay", "restart")

#: Row entries read per iteration by ``node2vec(method="exact")``.
CHUNK = 16


# --------------------------------------------------------------------------- #
# Per-walker arrays on a mesh: gathers and random draws keep the walkers' sharding.
# --------------------------------------------------------------------------- #


class _Layout(NamedTuple):
    """The sharding of per-walker arrays (``None`` off explicit meshes)."""

    spec: Any

    @classmethod
    def of(cls, starts: Array) -> "_Layout":
        if sharding.explicit_batch_axis(starts) is None:
            return cls(None)
        return cls(jax.typeof(starts).sharding)

    def take(self, table: Array, index: Array) -> Array:
        if self.spec is None:
            return table[index]
        return table.at[index].get(out_sharding=self.spec)

    def uniform(self, key: PRNGKey, shape: tuple[int, ...]) -> Array:
        return jax.random.uniform(key, shape, out_sharding=self.spec)

    def slot(self, key: PRNGKey, count: Array) -> tuple[Array, Array]:
        """A uniform slot in ``[0, count)`` and, given it, a uniform fraction in ``[0, 1)``.

        From one 32-bit word ``b`` (one threefry output per walker): the slot
        is ``floor(b count / 2^32)`` (uniform up to ``count / 2^32``) and the
        fraction the low word ``b count mod 2^32`` over ``2^32``, uniform on a
        grid of spacing ``count / 2^32`` whatever the slot: an index and an
        acceptance test for the price of one draw. ``count = 0`` gives slot 0.
        """
        bits = jax.random.bits(key, count.shape, jnp.uint32, out_sharding=self.spec)
        high, low = _multiply_wide(bits, count.astype(jnp.uint32))
        return high.astype(jnp.int32), (low >> 8).astype(jnp.float32) * (1.0 / (1 << 24))


def _multiply_wide(x: Array, y: Array) -> tuple[Array, Array]:
    """The high and low 32-bit words of the 64-bit product of uint32 ``x`` and ``y``
    (16-bit limbs: no 64-bit integers needed)."""
    x_hi, x_lo, y_hi, y_lo = x >> 16, x & 0xFFFF, y >> 16, y & 0xFFFF
    cross_a, cross_b = x_hi * y_lo, x_lo * y_hi
    carry = ((x_lo * y_lo) >> 16) + (cross_a & 0xFFFF) + (cross_b & 0xFFFF)
    high = x_hi * y_hi + (cross_a >> 16) + (cross_b >> 16) + (carry >> 16)
    return high, x * y


def _replicated(graph: CSRGraph, layout: _Layout) -> CSRGraph:
    """The graph replicated on the walkers' explicit mesh; unchanged elsewhere."""
    if layout.spec is None:
        return graph
    return jax.tree.map(lambda x: jax.reshard(x, P()), graph)


def _padded(graph: CSRGraph) -> CSRGraph:
    """A graph with at least one stored entry, so that gathers never index an empty array."""
    if graph.num_edges:
        return graph
    weights = None if graph.weights is None else jnp.zeros(1, graph.weights.dtype)
    return CSRGraph(graph.indptr, jnp.zeros(1, graph.indices.dtype), weights)


def _rows(graph: CSRGraph, nodes: Array, layout: _Layout) -> tuple[Array, Array]:
    """Row offset and out-degree of every node (degree 0 for the mark ``-1``)."""
    safe = jnp.clip(nodes, 0, graph.num_nodes - 1)
    lo = layout.take(graph.indptr, safe)
    degree = layout.take(graph.indptr, safe + 1) - lo
    return lo, jnp.where(nodes < 0, 0, degree)


def _first_above(values: Array, lo: Array, hi: Array, target: Array, layout: _Layout,
                 *, strict: bool) -> Array:
    """Per walker, the first index in ``[lo, hi)`` with ``values > target``
    (``>=`` when not ``strict``), or ``hi``; rows sorted ascending."""
    last = values.shape[0] - 1

    def body(bounds):
        lo, hi = bounds
        mid = (lo + hi) // 2
        value = layout.take(values, jnp.minimum(mid, last))
        right = (value <= target) if strict else (value < target)
        active = lo < hi
        return jnp.where(active & right, mid + 1, lo), jnp.where(active & ~right, mid, hi)

    lo, _ = lax.while_loop(lambda b: jnp.any(b[0] < b[1]), body, (lo, hi))
    return lo


def _adjacent(graph: CSRGraph, u: Array, x: Array, layout: _Layout) -> Array:
    """Whether ``x`` is an out-neighbour of ``u`` (binary search in ``u``'s row)."""
    lo, degree = _rows(graph, u, layout)
    hi = lo + degree
    at = _first_above(graph.indices, lo, hi, x, layout, strict=False)
    found = layout.take(graph.indices, jnp.minimum(at, graph.indices.shape[0] - 1)) == x
    return (at < hi) & found & (u >= 0)


# --------------------------------------------------------------------------- #
# Argument checks.
# --------------------------------------------------------------------------- #


def _check_graph(graph: Any) -> None:
    if not isinstance(graph, CSRGraph):
        raise ValueError(f"graph must be a graphs.CSRGraph, got {type(graph).__name__}")
    if graph.num_nodes < 1:
        raise ValueError("graph must have at least one node (indptr of length >= 2)")
    if not jnp.issubdtype(graph.indptr.dtype, jnp.integer) or not jnp.issubdtype(
        graph.indices.dtype, jnp.integer
    ):
        raise ValueError("graph.indptr and graph.indices must be integer arrays")


def _check_starts(starts: ArrayLike, graph: CSRGraph) -> Array:
    starts = jnp.asarray(starts)
    if starts.ndim != 1 or not jnp.issubdtype(starts.dtype, jnp.integer):
        raise ValueError(
            f"starts must be a 1-D integer array (one start node per walker), got "
            f"{starts.dtype}{starts.shape}"
        )
    if not _args.is_tracer(starts) and starts.size:
        bad = (np.asarray(starts) < 0) | (np.asarray(starts) >= graph.num_nodes)
        if bad.any():
            raise ValueError(
                f"starts must lie in [0, num_nodes = {graph.num_nodes}), found "
                f"{np.asarray(starts)[bad][0]}"
            )
    return starts.astype(jnp.int32)


def _check_dangling(graph: CSRGraph, policy: str, out_weight: Array | None = None) -> None:
    if policy != "error" or _args.is_tracer(graph.indptr):
        return
    if out_weight is None:
        empty = np.diff(np.asarray(graph.indptr)) == 0
    elif _args.is_tracer(out_weight):
        return
    else:
        empty = np.asarray(out_weight) <= 0
    if empty.any():
        raise ValueError(
            f"graph has {int(empty.sum())} dangling node(s) (no out-edges{'' if out_weight is None else ' of positive weight'}), "
            f"e.g. node {int(np.flatnonzero(empty)[0])}; pass dangling='stay' or 'restart'"
        )


def _restart(restart_prob: Any) -> Array | None:
    """``restart_prob`` as an array, or ``None`` for a literal 0 (no restart draws)."""
    if _args.is_tracer(restart_prob):
        return restart_prob
    if np.ndim(restart_prob) != 0 or not 0.0 <= float(restart_prob) <= 1.0:
        raise ValueError(f"restart_prob must be a scalar in [0, 1], got {restart_prob}")
    if isinstance(restart_prob, (int, float)) and restart_prob == 0:
        return None
    return jnp.asarray(restart_prob, jnp.float32)


def _prepare(key: PRNGKey, graph: CSRGraph, starts: ArrayLike, length: int, dangling: str):
    _args.check_key(key)
    _check_graph(graph)
    _args.check_int(length, "length", minimum=0)
    starts = _check_starts(starts, graph)
    if dangling not in _DANGLING:
        raise ValueError(f"dangling must be one of {_DANGLING}, got {dangling!r}")
    return starts


# --------------------------------------------------------------------------- #
# The lockstep engine of first-order (and non-backtracking) walks.
# --------------------------------------------------------------------------- #

# step(key, cur, prev, starts) -> (next, jumped); ``jumped`` marks moves along no edge
# (a restart), after which the walker has no previous node.
_Step = Callable[[PRNGKey, Array, Array, Array], tuple[Array, Array]]


def _lockstep(key: PRNGKey, starts: Array, length: int, step: _Step) -> Array:
    starts = jnp.where((starts >= 0), starts, -1)

    def body(carry, step_key):
        cur, prev = carry
        nxt, jumped = step(step_key, cur, prev, starts)
        nxt = jnp.where(cur < 0, -1, nxt)
        return (nxt, jnp.where(jumped, -1, cur)), nxt

    if length == 0:
        return starts[:, None]
    keys = jax.random.split(key, length)
    _, path = lax.scan(body, (starts, jnp.full_like(starts, -1)), keys)
    return jnp.concatenate([starts[None], path], axis=0).T


def _fallback(policy: str, cur: Array, starts: Array) -> tuple[Array, Array]:
    """Where a walker at a dangling node goes, and whether that is a jump."""
    if policy == "stay":
        return cur, jnp.zeros_like(cur, bool)
    if policy == "restart":
        return starts, jnp.ones_like(cur, bool)
    return jnp.full_like(cur, -1), jnp.ones_like(cur, bool)


def _or_fallback(nxt, has_edge, policy, cur, starts):
    """``(nxt, False)`` where the walker has an out-edge, else :func:`_fallback`'s move."""
    fallback, jumped = _fallback(policy, cur, starts)
    return jnp.where(has_edge, nxt, fallback), ~has_edge & jumped


def _with_restart(layout: _Layout, restart_prob: Array | None, step: _Step) -> _Step:
    if restart_prob is None:
        return step

    def restarting(key, cur, prev, starts):
        move_key, restart_key = jax.random.split(key)
        nxt, jumped = step(move_key, cur, prev, starts)
        restart = layout.uniform(restart_key, cur.shape) < restart_prob
        return jnp.where(restart, starts, nxt), jumped | restart

    return restarting


def _valid_starts(starts: Array, graph: CSRGraph) -> Array:
    return jnp.where((starts >= 0) & (starts < graph.num_nodes), starts, -1)


@functools.partial(jax.jit, static_argnames=("length", "dangling"))
def _uniform(key, graph, starts, length, restart_prob, dangling):
    layout = _Layout.of(starts)
    graph = _padded(_replicated(graph, layout))

    def step(key, cur, prev, starts):
        lo, degree = _rows(graph, cur, layout)
        k, _ = layout.slot(key, degree)
        nxt = layout.take(graph.indices, lo + k)
        return _or_fallback(nxt, degree > 0, dangling, cur, starts)

    return _lockstep(key, _valid_starts(starts, graph), length,
                     _with_restart(layout, restart_prob, step))


def uniform(
    key: PRNGKey,
    graph: CSRGraph,
    starts: ArrayLike,
    length: int,
    *,
    restart_prob: float | Array = 0.0,
    dangling: Dangling = "error",
) -> Array:
    """Simple random walks: ``X_{t+1}`` uniform among the out-neighbours of ``X_t``.

    Edge weights, if any, are ignored (see :func:`weighted`). With
    ``restart_prob = c > 0`` each step first goes back to the walker's start
    with probability ``c`` (a random walk with restart; its visit law is the
    personalised PageRank of the start).

    Args:
      key: a PRNG key.
      graph: a :class:`~jaxsampling.kernels.graphs.CSRGraph`.
      starts: ``int[num_walkers]`` start nodes.
      length: number of steps (static).
      restart_prob: probability in ``[0, 1]`` of a restart at each step.
      dangling: ``"error"``, ``"stay"`` or ``"restart"`` (module docstring).

    Returns:
      ``int32[num_walkers, length + 1]``.

    Raises:
      ValueError: bad shapes or dtypes; with concrete inputs, a start out of
        range, a dangling node under ``dangling="error"``, ``restart_prob``
        outside ``[0, 1]``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxsampling.kernels import graphs, walks
      >>> path = graphs.from_edges([0, 1], [1, 2], num_nodes=3, symmetric=True)
      >>> walks.uniform(jax.random.key(0), path, jnp.array([0]), 4)[0, :2].tolist()
      [0, 1]
    """
    starts = _prepare(key, graph, starts, length, dangling)
    _check_dangling(graph, dangling)
    return _uniform(key, graph, starts, length, _restart(restart_prob), dangling)


# --------------------------------------------------------------------------- #
# Edge-weighted walks.
# --------------------------------------------------------------------------- #


def _row_ids(graph: CSRGraph) -> Array:
    return jnp.repeat(
        jnp.arange(graph.num_nodes, dtype=jnp.int32), jnp.diff(graph.indptr),
        total_repeat_length=graph.num_edges,
    )


@jax.jit
def cumulative_weights(graph: CSRGraph) -> Array:
    """Per-row running sums of the edge weights, the table of :func:`weighted`.

    ``cdf[e] = sum of w over the entries of e's row up to and including e``,
    summed within the row only (a segmented scan), so float32 round-off grows
    with the degree, not with the number of edges. Build it once and pass it
    to :func:`weighted` / :func:`node2vec` when walking the same graph again.

    Args:
      graph: a weighted graph (an unweighted one counts every edge 1).

    Returns:
      ``float[num_edges]``.
    """
    weights = (
        jnp.ones(graph.num_edges, jnp.float32) if graph.weights is None else graph.weights
    )
    first = jnp.zeros(graph.num_edges, bool).at[graph.indptr[:-1]].set(True, mode="drop")

    def combine(a, b):
        (a_first, a_sum), (b_first, b_sum) = a, b
        return a_first | b_first, jnp.where(b_first, b_sum, a_sum + b_sum)

    _, cdf = lax.associative_scan(combine, (first, weights))
    return cdf


def _row_totals(graph: CSRGraph, cdf: Array) -> Array:
    """The total out-weight of every node (0 for an empty row)."""
    if not graph.num_edges:
        return jnp.zeros(graph.num_nodes, cdf.dtype)
    ends = graph.indptr[1:]
    total = cdf[jnp.maximum(ends - 1, 0)]
    return jnp.where(ends > graph.indptr[:-1], total, 0)


def _weighted_neighbour(key, graph, cdf, lo, degree, layout):
    """``x ∝ w`` in each walker's row, by binary search of ``u * total`` in ``cdf``."""
    hi = lo + degree
    total = jnp.where(degree > 0, layout.take(cdf, jnp.maximum(hi - 1, 0)), 0)
    target = jnp.minimum(layout.uniform(key, lo.shape) * total,
                         jnp.nextafter(total, jnp.zeros_like(total)))
    at = _first_above(cdf, lo, hi, target, layout, strict=True)
    return layout.take(graph.indices, jnp.minimum(at, graph.indices.shape[0] - 1)), total > 0


def _check_cdf(graph: CSRGraph, cdf: Any) -> Array:
    if cdf is None:
        return cumulative_weights(graph)
    cdf = jnp.asarray(cdf)
    if cdf.shape != (graph.num_edges,) or not jnp.issubdtype(cdf.dtype, jnp.floating):
        raise ValueError(
            f"cdf must be a float array of shape ({graph.num_edges},) from "
            f"cumulative_weights(graph), got {cdf.dtype}{cdf.shape}"
        )
    return cdf


def _check_weights(graph: CSRGraph) -> None:
    if graph.weights is None or _args.is_tracer(graph.weights):
        return
    w = np.asarray(graph.weights)
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(
            f"graph.weights must be finite and non-negative, found "
            f"{w[~(np.isfinite(w) & (w >= 0))][0]}"
        )


@functools.partial(jax.jit, static_argnames=("length", "dangling"))
def _weighted(key, graph, cdf, starts, length, restart_prob, dangling):
    layout = _Layout.of(starts)
    graph = _padded(_replicated(graph, layout))
    cdf = jnp.zeros(1, cdf.dtype) if not cdf.shape[0] else _replicated_array(cdf, layout)

    def step(key, cur, prev, starts):
        lo, degree = _rows(graph, cur, layout)
        nxt, has_edge = _weighted_neighbour(key, graph, cdf, lo, degree, layout)
        return _or_fallback(nxt, has_edge, dangling, cur, starts)

    return _lockstep(key, _valid_starts(starts, graph), length,
                     _with_restart(layout, restart_prob, step))


def _replicated_array(x: Array, layout: _Layout) -> Array:
    return x if layout.spec is None else jax.reshard(x, P())


def weighted(
    key: PRNGKey,
    graph: CSRGraph,
    starts: ArrayLike,
    length: int,
    *,
    cdf: Array | None = None,
    restart_prob: float | Array = 0.0,
    dangling: Dangling = "error",
) -> Array:
    """Edge-weighted random walks: ``P(X_{t+1} = j | X_t = i) = w_ij / sum_k w_ik``.

    Sampling is by inverse CDF: ``u * total_i`` searched in the row's running
    sums ``cdf`` (:func:`cumulative_weights`), so a zero-weight edge is never
    taken. A node whose out-weights are all zero is dangling.

    Args:
      key: a PRNG key.
      graph: a :class:`~jaxsampling.kernels.graphs.CSRGraph` (unweighted: all
        weights 1).
      starts: ``int[num_walkers]`` start nodes.
      length: number of steps (static).
      cdf: ``cumulative_weights(graph)``, computed here if ``None``.
      restart_prob: probability in ``[0, 1]`` of a restart at each step.
      dangling: ``"error"``, ``"stay"`` or ``"restart"``.

    Returns:
      ``int32[num_walkers, length + 1]``.

    Raises:
      ValueError: as :func:`uniform`; also a ``cdf`` of the wrong shape and,
        when concrete, negative or non-finite weights.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxsampling.kernels import graphs, walks
      >>> g = graphs.from_edges([0, 0, 1, 2], [1, 2, 0, 0], weights=[1.0, 0.0, 1.0, 1.0])
      >>> walks.weighted(jax.random.key(0), g, jnp.zeros(3, int), 2)[:, 1].tolist()
      [1, 1, 1]
    """
    starts = _prepare(key, graph, starts, length, dangling)
    _check_weights(graph)
    cdf = _check_cdf(graph, cdf)
    if dangling == "error" and not _args.is_tracer(cdf):
        _check_dangling(graph, dangling, _row_totals(graph, cdf))
    return _weighted(key, graph, cdf, starts, length, _restart(restart_prob), dangling)


# --------------------------------------------------------------------------- #
# Metropolis-Hastings and non-backtracking walks.
# --------------------------------------------------------------------------- #


def _check_log_target(log_target: Any, graph: CSRGraph) -> Array:
    if log_target is None:
        return jnp.zeros(graph.num_nodes, jnp.float32)
    log_target = jnp.asarray(log_target)
    if log_target.shape != (graph.num_nodes,) or not jnp.issubdtype(
        log_target.dtype, jnp.floating
    ):
        raise ValueError(
            f"log_target must be a float array of shape ({graph.num_nodes},), got "
            f"{log_target.dtype}{log_target.shape}"
        )
    if not _args.is_tracer(log_target) and np.any(np.isnan(np.asarray(log_target))):
        raise ValueError("log_target must not contain NaN")
    return log_target


def metropolis_hastings_probabilities(
    graph: CSRGraph, log_target: Array | None = None
) -> tuple[Array, Array]:
    """The transition matrix of :func:`metropolis_hastings`, on the edges and the diagonal.

    ``P_ij = min(1 / d_i, pi_j / (pi_i d_j))`` for every edge ``i -> j`` and
    ``P_ii = 1 - sum_j P_ij``. On an undirected graph ``pi_i P_ij = pi_j P_ji``,
    so ``pi`` is stationary (for ``pi`` uniform, ``P_ij = min(1/d_i, 1/d_j)``).

    Args:
      graph: an undirected graph (both directions stored).
      log_target: ``float[num_nodes]`` unnormalised ``log pi``; uniform if ``None``.

    Returns:
      ``(edge_probs float[num_edges], stay_probs float[num_nodes])``.
    """
    _check_graph(graph)
    log_target = _check_log_target(log_target, graph)
    log_degree = jnp.log(jnp.diff(graph.indptr).astype(log_target.dtype))
    rows = _row_ids(graph)
    cols = graph.indices
    log_p = jnp.minimum(-log_degree[rows],
                        log_target[cols] - log_target[rows] - log_degree[cols])
    edge_probs = jnp.exp(log_p)
    leave = jnp.zeros(graph.num_nodes, edge_probs.dtype).at[rows].add(edge_probs)
    return edge_probs, jnp.clip(1 - leave, 0, 1)


@functools.partial(jax.jit, static_argnames=("length", "dangling"))
def _metropolis_hastings(key, graph, starts, length, log_target, dangling):
    layout = _Layout.of(starts)
    graph = _padded(_replicated(graph, layout))
    log_target = _replicated_array(log_target, layout)

    def step(key, cur, prev, starts):
        lo, degree = _rows(graph, cur, layout)
        k, u = layout.slot(key, degree)
        proposal = layout.take(graph.indices, lo + k)
        _, proposal_degree = _rows(graph, proposal, layout)
        log_ratio = (
            layout.take(log_target, proposal) - layout.take(log_target, jnp.maximum(cur, 0))
            + jnp.log(degree.astype(log_target.dtype))
            - jnp.log(proposal_degree.astype(log_target.dtype))
        )
        accept = jnp.log(u) < log_ratio
        nxt = jnp.where(accept & (proposal_degree > 0), proposal, cur)
        return _or_fallback(nxt, degree > 0, dangling, cur, starts)

    return _lockstep(key, _valid_starts(starts, graph), length, step)


def metropolis_hastings(
    key: PRNGKey,
    graph: CSRGraph,
    starts: ArrayLike,
    length: int,
    *,
    log_target: Array | None = None,
    dangling: Dangling = "error",
) -> Array:
    """Metropolis-Hastings walks with stationary law ``pi ∝ exp(log_target)``.

    From ``i``, propose ``j`` uniform among the ``d_i`` neighbours and move
    with probability ``min(1, pi_j d_i / (pi_i d_j))``, else stay. On an
    undirected connected graph the chain is reversible with respect to ``pi``
    (transition matrix: :func:`metropolis_hastings_probabilities`); with the
    default uniform target it samples nodes uniformly, the base chain of the
    self-repellent walk (:mod:`jaxsampling.kernels.srrw`).

    Args:
      key: a PRNG key.
      graph: an undirected graph.
      starts: ``int[num_walkers]`` start nodes.
      length: number of steps (static).
      log_target: ``float[num_nodes]``, unnormalised log target; uniform if ``None``.
      dangling: ``"error"``, ``"stay"`` or ``"restart"``.

    Returns:
      ``int32[num_walkers, length + 1]`` (repeated nodes are rejections).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxsampling.kernels import graphs, walks
      >>> g = graphs.karate_club()
      >>> w = walks.metropolis_hastings(jax.random.key(0), g, jnp.zeros(4, int), 20)
      >>> w.shape
      (4, 21)
    """
    starts = _prepare(key, graph, starts, length, dangling)
    _check_dangling(graph, dangling)
    log_target = _check_log_target(log_target, graph)
    return _metropolis_hastings(key, graph, starts, length, log_target, dangling)


@functools.partial(jax.jit, static_argnames=("length", "dangling"))
def _non_backtracking(key, graph, starts, length, dangling):
    layout = _Layout.of(starts)
    graph = _padded(_replicated(graph, layout))

    def step(key, cur, prev, starts):
        lo, degree = _rows(graph, cur, layout)
        came_back = _adjacent(graph, cur, prev, layout)  # ``prev`` is one of the choices
        choices = degree - came_back.astype(degree.dtype)
        k, _ = layout.slot(key, choices)
        nxt = layout.take(graph.indices, lo + k)
        # Draw among the first choices slots; the slot of prev stands for the last one.
        last = layout.take(graph.indices, jnp.maximum(lo + degree - 1, 0))
        nxt = jnp.where(came_back & (nxt == prev), last, nxt)
        nxt = jnp.where(choices > 0, nxt, prev)
        return _or_fallback(nxt, degree > 0, dangling, cur, starts)

    return _lockstep(key, _valid_starts(starts, graph), length, step)


def non_backtracking(
    key: PRNGKey,
    graph: CSRGraph,
    starts: ArrayLike,
    length: int,
    *,
    dangling: Dangling = "error",
) -> Array:
    """Non-backtracking walks: uniform among the neighbours except the node just left.

    ``P(X_{t+1} = x | X_t = v, X_{t-1} = u) = 1 / (d_v - 1)`` for ``x != u``
    when ``u`` is a neighbour of ``v`` with ``d_v > 1``; the walk backtracks
    only from a node of degree 1; the first step (and the first after a
    restart) is uniform. One draw per step: a uniform slot among ``d_v - 1``,
    with ``u``'s slot standing for the row's last entry.

    Args:
      key: a PRNG key.
      graph: a graph (typically undirected).
      starts: ``int[num_walkers]`` start nodes.
      length: number of steps (static).
      dangling: ``"error"``, ``"stay"`` or ``"restart"``.

    Returns:
      ``int32[num_walkers, length + 1]``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxsampling.kernels import graphs, walks
      >>> cycle = graphs.from_edges([0, 1, 2], [1, 2, 0], symmetric=True)
      >>> w = walks.non_backtracking(jax.random.key(0), cycle, jnp.array([0]), 6)
      >>> len(set(w[0, :3].tolist()))  # never turns back on a cycle
      3
    """
    starts = _prepare(key, graph, starts, length, dangling)
    _check_dangling(graph, dangling)
    return _non_backtracking(key, graph, starts, length, dangling)


# --------------------------------------------------------------------------- #
# node2vec.
# --------------------------------------------------------------------------- #


def _node2vec_bias(graph, prev, x, inv_p, inv_q, layout, needed=None):
    """``a(u, x)``: ``1/p`` to return, ``1`` to a neighbour of ``u``, ``1/q`` otherwise;
    ``1`` on a first step (``u = -1``). The adjacency search runs only where
    ``needed`` (default: everywhere); elsewhere ``a`` reads as ``1/q``."""
    search = (prev >= 0) & (x != prev)
    if needed is not None:
        search &= needed
    if layout.spec is None and search.ndim == 1:
        common = _adjacent_compacted(graph, prev, x, search)
    else:
        common = _adjacent(graph, jnp.where(search, prev, -1), x, layout)
    bias = jnp.where(x == prev, inv_p, jnp.where(common, 1.0, inv_q))
    return jnp.where(prev < 0, 1.0, bias)


def _adjacent_compacted(graph: CSRGraph, u: Array, x: Array, search: Array) -> Array:
    """:func:`_adjacent` on the walkers marked ``search`` only: they are gathered into
    the smallest of ``size / 16, size / 8, size / 4, size / 2`` lanes that holds them
    (``lax.switch``; all lanes when more than half need it), so the binary search
    costs what the walkers that need it cost. ``False`` where ``search`` is not set."""
    size = u.shape[0]
    layout = _Layout(None)
    capacities = sorted({max(size >> shift, 1) for shift in (4, 3, 2, 1)})

    def compacted(capacity):
        def run(_):
            (lanes,) = jnp.nonzero(search, size=capacity, fill_value=size)
            safe = jnp.minimum(lanes, size - 1)
            found = _adjacent(graph, jnp.where(lanes < size, u[safe], -1), x[safe], layout)
            return jnp.zeros(size, bool).at[lanes].set(found, mode="drop")

        return run

    def every_lane(_):
        return _adjacent(graph, jnp.where(search, u, -1), x, layout)

    branch = jnp.searchsorted(jnp.asarray(capacities), jnp.sum(search))
    return lax.switch(branch, [compacted(c) for c in capacities] + [every_lane], None)


@functools.partial(jax.jit, static_argnames=("length", "dangling"))
def _node2vec_rejection(key, graph, cdf, starts, length, inv_p, inv_q, dangling):
    layout = _Layout.of(starts)
    graph = _padded(_replicated(graph, layout))
    cdf = None if cdf is None else _replicated_array(_padded_cdf(cdf), layout)
    starts = _valid_starts(starts, graph)
    bound = jnp.maximum(jnp.maximum(inv_p, inv_q), 1.0)
    out = jnp.broadcast_to(starts[:, None], (starts.shape[0], length + 1))
    out = jnp.where(starts[:, None] < 0, -1, out)
    write = jax.vmap(lambda row, i, v: row.at[i].set(v))

    def cond(state):
        return jnp.any(state[0] < length)

    def body(state):
        pos, cur, prev, out, i = state
        step_key = jax.random.fold_in(key, i)
        lo, degree = _rows(graph, cur, layout)
        if cdf is None:  # one word: the proposal and the acceptance test
            k, u = layout.slot(step_key, degree)
            x = layout.take(graph.indices, lo + k)
            has_edge = degree > 0
        else:
            propose_key, accept_key = jax.random.split(step_key)
            x, has_edge = _weighted_neighbour(propose_key, graph, cdf, lo, degree, layout)
            u = layout.uniform(accept_key, cur.shape)
        # The adjacency of (prev, x) decides only when 1 and 1/q straddle the threshold.
        threshold = u * bound
        needed = ((pos < length) & (threshold >= jnp.minimum(1.0, inv_q))
                  & (threshold < jnp.maximum(1.0, inv_q)))
        bias = _node2vec_bias(graph, prev, x, inv_p, inv_q, layout, needed)
        accept = threshold < bias
        fallback, jumped = _fallback(dangling, cur, starts)
        x = jnp.where(has_edge, x, fallback)
        move = (accept | ~has_edge) & (pos < length)
        x = jnp.where(cur < 0, -1, x)
        out = write(out, jnp.where(move, pos + 1, pos), jnp.where(move, x, cur))
        new_prev = jnp.where(~has_edge & jumped, -1, cur)
        return (pos + move, jnp.where(move, x, cur), jnp.where(move, new_prev, prev), out, i + 1)

    pos = jnp.zeros_like(starts)
    state = (pos, starts, jnp.full_like(starts, -1), out, jnp.zeros((), jnp.int32))
    return lax.while_loop(cond, body, state)[3]


def _padded_cdf(cdf: Array) -> Array:
    return cdf if cdf.shape[0] else jnp.zeros(1, cdf.dtype)


@functools.partial(jax.jit, static_argnames=("length", "dangling"))
def _node2vec_exact(key, graph, starts, length, inv_p, inv_q, dangling):
    layout = _Layout.of(starts)
    weighted_graph = graph.weights is not None
    graph = _padded(_replicated(graph, layout))
    offsets = jnp.arange(CHUNK, dtype=jnp.int32)
    last = graph.indices.shape[0] - 1
    chunk_layout = _Layout(None if layout.spec is None else jax.sharding.NamedSharding(
        layout.spec.mesh, P(layout.spec.spec[0], None)))

    def step(key, cur, prev, starts):
        lo, degree = _rows(graph, cur, layout)

        def scan_row(state):
            j, best, best_score = state
            slots = lo[:, None] + j * CHUNK + offsets
            valid = slots < (lo + degree)[:, None]
            slots = jnp.minimum(slots, last)
            x = chunk_layout.take(graph.indices, slots)
            rows_prev = jnp.broadcast_to(prev[:, None], x.shape)
            bias = _node2vec_bias(graph, rows_prev, x, inv_p, inv_q, chunk_layout)
            log_w = jnp.log(bias)
            if weighted_graph:
                log_w = log_w + jnp.log(chunk_layout.take(graph.weights, slots))
            gumbel = jax.random.gumbel(jax.random.fold_in(key, j), x.shape,
                                       out_sharding=chunk_layout.spec)
            score = jnp.where(valid, log_w + gumbel, -jnp.inf)
            at = jnp.argmax(score, axis=1)
            top = jnp.take_along_axis(score, at[:, None], axis=1)[:, 0]
            pick = jnp.take_along_axis(x, at[:, None], axis=1)[:, 0]
            better = top > best_score
            return j + 1, jnp.where(better, pick, best), jnp.where(better, top, best_score)

        def more(state):
            return jnp.any(state[0] * CHUNK < degree)

        init = (jnp.zeros((), jnp.int32), jnp.full_like(cur, -1),
                jnp.full_like(cur, -jnp.inf, dtype=jnp.float32))
        _, nxt, best_score = lax.while_loop(more, scan_row, init)
        has_edge = best_score > -jnp.inf
        return _or_fallback(nxt, has_edge, dangling, cur, starts)

    return _lockstep(key, _valid_starts(starts, graph), length, step)


def node2vec(
    key: PRNGKey,
    graph: CSRGraph,
    starts: ArrayLike,
    length: int,
    *,
    p: float | Array = 1.0,
    q: float | Array = 1.0,
    method: Literal["rejection", "exact"] = "rejection",
    cdf: Array | None = None,
    dangling: Dangling = "error",
) -> Array:
    """node2vec second-order walks (Grover & Leskovec 2016), exact for every ``p, q``.

    ``P(X_{t+1} = x | X_t = v, X_{t-1} = u) = w_vx a(u, x) / sum_y w_vy a(u, y)``,
    ``a(u, x) = 1/p`` if ``x = u``, ``1`` if ``x`` neighbours ``u``, ``1/q``
    otherwise; the first step is ``∝ w_vx``. ``p`` large / ``q < 1`` explore
    outward (DFS-like), ``q > 1`` stays local (BFS-like).

    ``method="rejection"`` (KnightKing): propose ``x ∝ w_vx`` (uniform on an
    unweighted graph), accept with probability ``a(u, x) / max(1/p, 1, 1/q)``;
    the accepted ``x`` has exactly the law above. Each walker advances on its
    own (a ``while`` loop over proposals, not over steps), so fast walkers do
    not wait for unlucky ones; a proposal costs one binary search in ``u``'s
    row. Expected proposals per step: ``max(1/p, 1, 1/q) / E[a]``.
    ``method="exact"``: Gumbel-max over ``log w_vx + log a(u, x)`` for every
    neighbour, ``CHUNK`` at a time (no padding to the maximum degree).

    Args:
      key: a PRNG key.
      graph: a graph; weights are used if present.
      starts: ``int[num_walkers]`` start nodes.
      length: number of steps (static).
      p: return parameter, ``> 0``.
      q: in-out parameter, ``> 0``.
      method: ``"rejection"`` or ``"exact"``.
      cdf: ``cumulative_weights(graph)`` for a weighted graph and the rejection
        method (computed if ``None``).
      dangling: ``"error"``, ``"stay"`` or ``"restart"``.

    Returns:
      ``int32[num_walkers, length + 1]``.

    Raises:
      ValueError: as :func:`uniform`; also ``p`` or ``q`` not positive, an
        unknown ``method``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxsampling.kernels import graphs, walks
      >>> g = graphs.karate_club()
      >>> a = walks.node2vec(jax.random.key(0), g, jnp.arange(34), 5, p=4.0, q=0.25)
      >>> b = walks.node2vec(jax.random.key(0), g, jnp.arange(34), 5, p=4.0, q=0.25,
      ...                    method="exact")
      >>> a.shape == b.shape == (34, 6)
      True
    """
    starts = _prepare(key, graph, starts, length, dangling)
    _check_dangling(graph, dangling)
    for name, value in (("p", p), ("q", q)):
        if not _args.is_tracer(value) and not float(value) > 0:
            raise ValueError(f"{name} must be positive, got {value}")
    inv_p = 1.0 / jnp.asarray(p, jnp.float32)
    inv_q = 1.0 / jnp.asarray(q, jnp.float32)
    if method == "exact":
        _check_weights(graph)
        return _node2vec_exact(key, graph, starts, length, inv_p, inv_q, dangling)
    if method != "rejection":
        raise ValueError(f"method must be 'rejection' or 'exact', got {method!r}")
    if graph.weights is not None:
        _check_weights(graph)
        cdf = _check_cdf(graph, cdf)
    return _node2vec_rejection(key, graph, cdf, starts, length, inv_p, inv_q, dangling)


# --------------------------------------------------------------------------- #
# Walk statistics.
# --------------------------------------------------------------------------- #


@jax.jit
def follows_edges(graph: CSRGraph, walks: Array) -> Array:
    """Whether every move of every walk (skipping stays and ``-1`` marks) is an edge."""
    layout = _Layout(None)
    graph = _padded(graph)
    u, x = walks[:, :-1].ravel(), walks[:, 1:].ravel()
    moved = (u != x) & (u >= 0) & (x >= 0)
    return jnp.all(~moved | _adjacent(graph, u, x, layout))


class Cooccurrence(NamedTuple):
    """Sparse co-occurrence counts as a padded COO (sorted by ``(rows, cols)``).

    Attributes:
      rows: ``int32[capacity]``; ``-1`` past ``nnz``.
      cols: ``int32[capacity]``; ``-1`` past ``nnz``.
      counts: ``int32[capacity]``; ``0`` past ``nnz``.
      nnz: ``int32[]``, the number of distinct pairs.
    """

    rows: Array
    cols: Array
    counts: Array
    nnz: Array

    def to_scipy(self, num_nodes: int):
        """The counts as a ``scipy.sparse.csr_matrix`` of shape ``(num_nodes, num_nodes)``."""
        import scipy.sparse

        n = int(self.nnz)
        return scipy.sparse.csr_matrix(
            (np.asarray(self.counts[:n]), (np.asarray(self.rows[:n]), np.asarray(self.cols[:n]))),
            shape=(num_nodes, num_nodes),
        )


def _pairs(walks: Array, window: int, symmetric: bool) -> tuple[Array, Array]:
    heads, tails = [], []
    for k in range(1, min(window, walks.shape[1] - 1) + 1):
        heads.append(walks[:, :-k].ravel())
        tails.append(walks[:, k:].ravel())
    if not heads:
        empty = jnp.zeros(0, jnp.int32)
        return empty, empty
    a, b = jnp.concatenate(heads), jnp.concatenate(tails)
    if symmetric:
        a, b = jnp.concatenate([a, b]), jnp.concatenate([b, a])
    return a, b


def _check_walks(walks: Any, window: Any) -> Array:
    walks = jnp.asarray(walks)
    if walks.ndim != 2 or not jnp.issubdtype(walks.dtype, jnp.integer):
        raise ValueError(
            f"walks must be an int[num_walkers, length + 1] array, got {walks.dtype}{walks.shape}"
        )
    _args.check_int(window, "window")
    return sharding.unshard(walks).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("window", "symmetric"))
def _cooccurrence(walks, window, symmetric):
    a, b = _pairs(walks, window, symmetric)
    valid = (a >= 0) & (b >= 0)
    big = jnp.iinfo(jnp.int32).max
    a, b = lax.sort((jnp.where(valid, a, big), jnp.where(valid, b, big)), num_keys=2)
    valid = a < big
    new = jnp.concatenate([jnp.ones(1, bool), (a[1:] != a[:-1]) | (b[1:] != b[:-1])]) & valid
    slot = jnp.cumsum(new) - 1
    slot = jnp.where(valid, slot, a.shape[0])
    capacity = a.shape[0]
    counts = jnp.zeros(capacity, jnp.int32).at[slot].add(1, mode="drop")
    rows = jnp.full(capacity, -1, jnp.int32).at[slot].set(a, mode="drop")
    cols = jnp.full(capacity, -1, jnp.int32).at[slot].set(b, mode="drop")
    return Cooccurrence(rows, cols, counts, jnp.sum(new, dtype=jnp.int32))


def cooccurrence(walks: ArrayLike, window: int, *, symmetric: bool = True) -> Cooccurrence:
    """Skip-gram co-occurrence counts of walks, as a sparse padded COO.

    ``C[u, v] = #{(w, t, k): walks[w, t] = u, walks[w, t + k] = v, 1 <= k <= window}``
    (plus the reversed pairs when ``symmetric``), skipping ``-1`` marks: the
    context pairs of DeepWalk / node2vec, and the random-walk co-occurrence
    matrix. Capacity is the number of pairs, ``num_walkers * sum_k (length + 1 - k)``
    (times 2 if symmetric); sharded walks are gathered first (one sort).

    Args:
      walks: ``int[num_walkers, length + 1]`` from any walk sampler.
      window: context size ``>= 1`` (static).
      symmetric: count ``(v, u)`` with every ``(u, v)``.

    Returns:
      A :class:`Cooccurrence`.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxsampling.kernels import walks
      >>> c = walks.cooccurrence(jnp.array([[0, 1, 0]]), 1, symmetric=False)
      >>> int(c.nnz), c.rows[:2].tolist(), c.cols[:2].tolist(), c.counts[:2].tolist()
      (2, [0, 1], [1, 0], [1, 1])
    """
    return _cooccurrence(_check_walks(walks, window), window, symmetric)


@functools.partial(jax.jit, static_argnames=("window", "num_nodes", "symmetric"))
def _cooccurrence_matrix(walks, window, num_nodes, symmetric):
    a, b = _pairs(walks, window, symmetric)
    valid = (a >= 0) & (b >= 0)
    return jnp.zeros((num_nodes, num_nodes), jnp.int32).at[
        jnp.where(valid, a, num_nodes), b
    ].add(1, mode="drop")


def cooccurrence_matrix(
    walks: ArrayLike, window: int, num_nodes: int, *, symmetric: bool = True
) -> Array:
    """The dense ``int32[num_nodes, num_nodes]`` form of :func:`cooccurrence` (small graphs).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxsampling.kernels import walks
      >>> walks.cooccurrence_matrix(jnp.array([[0, 1, 2]]), 2, 3).tolist()
      [[0, 1, 1], [1, 0, 1], [1, 1, 0]]
    """
    _args.check_int(num_nodes, "num_nodes")
    return _cooccurrence_matrix(_check_walks(walks, window), window, num_nodes, symmetric)
