"""Walks suite: uniform and node2vec random walks against torch_cluster, PecanPy,
graph-walker and csrgraph.

Workload (the issue's): the Barabasi-Albert graph ``networkx.barabasi_albert_graph(
100_000, 5, seed=0)``, stored as CSR with both directions of every edge (sorted
neighbour lists, no weights); one walker starting at every node (100,000
walkers), 80 steps each (``length + 1 = 81`` nodes a walk):

* ``uniform``: simple random walks. jaxsampling ``walks.uniform`` against
  ``torch_cluster.random_walk`` (PyG), PecanPy ``FirstOrderUnweighted``,
  graph-walker (``walker.random_walks``) and csrgraph (``csrgraph.random_walks``);
* ``node2vec p=0.5 q=2``: second-order walks of the same shape. jaxsampling
  ``walks.node2vec`` (``method="rejection"``, the default, and ``"exact"``,
  a separate row) against torch_cluster, PecanPy ``SparseOTF`` and ``PreComp``
  (precomputed second-order alias tables; the precomputation is timed apart,
  ``setup_s``), graph-walker and csrgraph.

Every anchor's walk kernel is called directly on its own graph structure, built
once outside the timing: ``torch.ops.torch_cluster.random_walk(rowptr, col,
start, length, p, q)`` (what ``torch_cluster.random_walk`` calls after building
``rowptr`` from ``(row, col)`` on every call); PecanPy's ``_random_walks`` numba
kernel with the object's ``move_forward`` (what ``simulate_walks`` calls before
mapping every index to a string node ID); graph-walker's ``_walker.random_walks``
/ ``node2vec_random_walks`` on the row-normalised CSR arrays (what
``walker.random_walks`` calls after normalising a networkx graph); csrgraph's
``_random_walk`` / ``_node2vec_walks`` on the normalised graph (what
``csrgraph.random_walks`` calls after normalising). jaxsampling:
``jax.jit(lambda key, graph, starts: walks.uniform(key, graph, starts, length))``
(node2vec likewise, ``p`` and ``q`` closed over) with the graph a jitted argument,
a fresh key every call.

Threads: the whole process is pinned to one core (the idlest allowed core over
one second of ``/proc/stat``; ``os.sched_setaffinity`` on every thread, before
JAX, numba or torch start their thread pools) and every
library is told to use one thread (``torch.set_num_threads(1)``,
``numba.set_num_threads(1)``, ``OMP/MKL/OPENBLAS/NUMBA_NUM_THREADS=1``, BLAS
limited through :class:`benchmarks.machine.BlasThreads`). graph-walker always
starts ``std::thread::hardware_concurrency()`` threads (no option); pinned, they
share the one core.

Timing (see :data:`PROTOCOL`): for every implementation a probe (two calls on a
strided subset of the start nodes) estimates the full call; an implementation
whose full call would exceed :data:`MAX_CALL_S` runs on a strided subset of the
walkers (``starts[::stride]``, recorded) and its times are scaled to the full
walker count. Then one first call, and the repeats *interleaved* across
implementations (round ``r`` calls every implementation once, in an order
rotated by ``r``), one call per sample. Reported: median, min, IQR,
``msteps_per_s = walkers * length / median / 1e6`` and the compile time
(JAX: first call minus median; numba anchors: first probe call minus the second).
``ratios``: anchor median / jaxsampling median (above 1: jaxsampling faster).

Correctness (``accuracy``, per implementation): (1) every step of every walk
the implementation returned while timed (first call, warm-up and repeats) is
checked against the graph: ``off_graph_steps`` counts moves to a non-neighbour
(or an out-of-range node); (2) the transition law at a fixed (previous, current)
pair ``(u, v)`` (``u`` of degree 5, ``v`` a neighbour of degree 10-30 sharing as
many neighbours with ``u`` as possible): :data:`PAIR_WALKERS` walks of 2 steps
from ``u``; the third node of those whose second is ``v`` is compared with the
exact law (node2vec: weight ``1/p`` for ``u``, ``1`` for a neighbour of ``u``,
``1/q`` otherwise; uniform: equal weights) by Pearson's chi-square, for
``(p, q)`` in :data:`PAIR_SETTINGS` (node2vec) and the uniform law (uniform
walks). ``passed``: no off-graph step and every p-value at least
:data:`P_VALUE_PASS`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import itertools
import math
import os
import statistics
import time
from typing import Any, Callable

import jax
import numpy as np
import scipy.sparse
import scipy.stats

from benchmarks import timing
from benchmarks.machine import BlasThreads, background_load, load_notes

OURS = "jaxsampling"
OURS_EXACT = "jaxsampling (exact)"
TORCH = "torch_cluster"
PECANPY = "pecanpy"
PECANPY_OTF = "pecanpy (SparseOTF)"
PECANPY_PRECOMP = "pecanpy (PreComp)"
GRAPH_WALKER = "graph-walker"
CSRGRAPH = "csrgraph"
#: Distribution names of the anchors (their versions go into the results file).
ANCHOR_PACKAGES = ["torch", "torch-cluster", "pecanpy", "graph-walker", "csrgraph", "networkx"]

GRAPH_SEED = 0
WALK_SEED = 20240615
_SAMPLER_IDS = itertools.count()
NUM_NODES = 100_000
QUICK_NUM_NODES = 10_000
BA_M = 5
LENGTH = 80
QUICK_LENGTH = 20
P, Q = 0.5, 2.0

#: (p, q) of the node2vec transition-law tests; torch_cluster's CPU rejection
#: sampler accepts with max(prob of the class, 1/q / max(1/p, 1, 1/q)), which is
#: 1 when q < 1 and 1/q >= 1/p, so the last two settings tell.
PAIR_SETTINGS = ((P, Q), (0.5, 0.5), (2.0, 0.5))
PAIR_WALKERS = 200_000
QUICK_PAIR_WALKERS = 50_000
PAIR_DEGREE = (10, 30)
#: A law test passes when its chi-square p-value is at least this.
P_VALUE_PASS = 1e-4

#: An implementation whose full call would take longer runs on fewer walkers.
MAX_CALL_S = 5.0
QUICK_MAX_CALL_S = 1.0
PROBE_WALKERS = 1_000
QUICK_PROBE_WALKERS = 500
DEFAULT_REPEATS = 5
QUICK_REPEATS = 3
WARMUP_ROUNDS = 1

#: The goals of the issue, checked on the results (see :func:`goals`).
GOAL_UNIFORM = 5.0
GOAL_NODE2VEC = 1.0

_THREAD_VARS = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
)
#: Aliases numpy 2 removed and nptyping 2.5 (a PecanPy dependency) still reads at
#: import; they exist only while PecanPy is imported.
_NUMPY1_ALIASES = {
    "bool8": "bool_", "object0": "object_", "int0": "intp", "uint0": "uintp",
    "float_": "float64", "longfloat": "longdouble", "singlecomplex": "complex64",
    "complex_": "complex128", "cfloat": "complex128", "clongfloat": "clongdouble",
    "longcomplex": "clongdouble", "void0": "void", "string_": "bytes_",
    "bytes0": "bytes_", "unicode_": "str_", "str0": "str_",
}

PROTOCOL = f"""\
walks suite (interleaved; replaces the default protocol of benchmarks.timing):
Inputs (graph structures of every implementation, start nodes) are built once, outside
the timed region; one process, pinned to one core, every library on one thread.
Probe: every implementation is called twice on a strided subset of the start nodes
({PROBE_WALKERS} walkers); if its full call is then estimated above {MAX_CALL_S:g} s
it runs on starts[::stride] (stride chosen to fit) and its times are scaled by
num_nodes / walkers (recorded: walkers, stride, measured_median_s).
first_call_s: the first call at the chosen size (JAX: trace + compile + run).
compile_s: JAX: first_call_s - median; numba anchors: first probe call - second probe call
(numba JIT; PecanPy recompiles per object, since its move_forward closes over p, q and
the tables); torch_cluster / graph-walker: 0 up to noise.
Steady state: {WARMUP_ROUNDS} untimed warm-up round, then `repeats` timed rounds; a
round calls every implementation once, in an order rotated by the round number;
time.perf_counter around one call (JAX: until jax.block_until_ready) is one sample.
Reported per implementation: median, min and IQR (q75 - q25) of the samples in
seconds; msteps_per_s = walkers * length / median / 1e6. ratio = anchor median /
jaxsampling median, so a ratio above 1 means jaxsampling is faster than that anchor.
background_cores: the cores other processes used, wall-weighted over the timed calls.
"""


# ----------------------------------------------------------------------------
# The graph, its checks and the transition-law tests.
# ----------------------------------------------------------------------------


@dataclasses.dataclass
class Graph:
    """The benchmark graph: CSR (both directions, sorted rows, int64)."""

    num_nodes: int
    indptr: np.ndarray
    indices: np.ndarray
    build_s: float

    @property
    def num_edges(self) -> int:
        return int(self.indices.size)

    def csr(self, dtype: Any = np.float32) -> scipy.sparse.csr_matrix:
        """A scipy CSR matrix of ones (a fresh copy every call)."""
        n = self.num_nodes
        return scipy.sparse.csr_matrix(
            (np.ones(self.num_edges, dtype), self.indices.copy(), self.indptr.copy()),
            shape=(n, n),
        )

    def neighbours(self, node: int) -> np.ndarray:
        return self.indices[self.indptr[node] : self.indptr[node + 1]]


def barabasi_albert(n: int, m: int = BA_M, seed: int = GRAPH_SEED) -> Graph:
    """``networkx.barabasi_albert_graph(n, m, seed)`` as CSR with both directions."""
    import networkx as nx

    start = time.perf_counter()
    g = nx.barabasi_albert_graph(n, m, seed=seed)
    edges = np.asarray(list(g.edges()), dtype=np.int64)
    senders = np.concatenate([edges[:, 0], edges[:, 1]])
    receivers = np.concatenate([edges[:, 1], edges[:, 0]])
    csr = scipy.sparse.csr_matrix(
        (np.ones(senders.size, np.float32), (senders, receivers)), shape=(n, n)
    )
    csr.sum_duplicates()
    csr.sort_indices()
    if (csr.data != 1).any() or (csr.diagonal() != 0).any():
        raise RuntimeError("the Barabasi-Albert graph has a multi-edge or a self-loop")
    return Graph(
        num_nodes=n,
        indptr=csr.indptr.astype(np.int64),
        indices=csr.indices.astype(np.int64),
        build_s=time.perf_counter() - start,
    )


def _off_graph_kernel() -> Callable[..., tuple[int, int, int]]:
    """A numba kernel: (count, first walk, first step) of the moves that are not edges."""
    import numba

    @numba.njit(nogil=True, cache=False)
    def off_graph(walks, indptr, indices, num_nodes):
        count, first_walk, first_step = 0, -1, -1
        for i in range(walks.shape[0]):
            for t in range(walks.shape[1] - 1):
                a, b = walks[i, t], walks[i, t + 1]
                ok = False
                if 0 <= a < num_nodes and 0 <= b < num_nodes:
                    lo, hi = indptr[a], indptr[a + 1]
                    while lo < hi:  # binary search of b in a's sorted row
                        mid = (lo + hi) // 2
                        if indices[mid] < b:
                            lo = mid + 1
                        else:
                            hi = mid
                    ok = lo < indptr[a + 1] and indices[lo] == b
                if not ok:
                    if count == 0:
                        first_walk, first_step = i, t
                    count += 1
        return count, first_walk, first_step

    return off_graph


@dataclasses.dataclass
class EdgeCheck:
    """Accumulates the off-graph moves of every output of one implementation."""

    graph: Graph
    kernel: Callable[..., tuple[int, int, int]]
    calls: int = 0
    steps: int = 0
    off_graph: int = 0
    wrong_starts: int = 0
    wrong_shape: int = 0
    examples: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def __call__(self, walks: np.ndarray, starts: np.ndarray, length: int) -> None:
        self.calls += 1
        if walks.shape != (starts.size, length + 1):
            self.wrong_shape += 1
            return
        walks = np.ascontiguousarray(walks, dtype=np.int64)
        self.steps += walks.shape[0] * length
        self.wrong_starts += int((walks[:, 0] != starts).sum())
        count, i, t = self.kernel(walks, self.graph.indptr, self.graph.indices,
                                  self.graph.num_nodes)
        self.off_graph += int(count)
        if count and len(self.examples) < 3:
            a, b = int(walks[i, t]), int(walks[i, t + 1])
            example: dict[str, Any] = {"from": a, "to": b, "step": int(t + 1)}
            if 0 <= a < self.graph.num_nodes:
                example["from_degree"] = int(self.graph.indptr[a + 1] - self.graph.indptr[a])
                nxt = self.graph.indptr[a + 1]
                example["to_is_first_neighbour_of_next_row"] = bool(
                    nxt < self.graph.num_edges and self.graph.indices[nxt] == b
                )
                example["to_is_indices_0"] = bool(self.graph.indices[0] == b)
            self.examples.append(example)

    def to_json(self) -> dict[str, Any]:
        return {
            "calls_checked": self.calls,
            "steps_checked": self.steps,
            "off_graph_steps": self.off_graph,
            "off_graph_fraction": self.off_graph / self.steps if self.steps else None,
            "wrong_starts": self.wrong_starts,
            "wrong_shape_calls": self.wrong_shape,
            "off_graph_examples": self.examples,
        }

    @property
    def ok(self) -> bool:
        return self.steps > 0 and not (self.off_graph or self.wrong_starts or self.wrong_shape)


def choose_pair(graph: Graph, m: int = BA_M) -> tuple[int, int]:
    """``(u, v)``: ``deg u = m``, ``v ~ u`` with ``deg v`` in :data:`PAIR_DEGREE`,
    the most common neighbours (ties: smallest ``v``, then ``u``)."""
    deg = np.diff(graph.indptr)
    lo, hi = PAIR_DEGREE
    best: tuple[int, int, int] | None = None
    for u in np.flatnonzero(deg == m):
        nu = graph.neighbours(u)
        for v in nu:
            if not lo <= deg[v] <= hi:
                continue
            common = np.intersect1d(nu, graph.neighbours(v), assume_unique=True).size
            key = (-common, int(v), int(u))
            if best is None or key < best:
                best = key
    if best is None:
        raise RuntimeError("no (u, v) pair with the wanted degrees")
    return best[2], best[1]


def node2vec_law(graph: Graph, u: int, v: int, p: float, q: float) -> tuple[np.ndarray, np.ndarray]:
    """Neighbours of ``v`` and the exact law of the step after ``u -> v``, with the
    class of every neighbour (0: ``u``, 1: a neighbour of ``u``, 2: other)."""
    nv = graph.neighbours(v)
    classes = np.where(nv == u, 0, np.where(np.isin(nv, graph.neighbours(u)), 1, 2))
    weights = np.array([1.0 / p, 1.0, 1.0 / q])[classes]
    return classes, weights / weights.sum()


def law_test(
    graph: Graph, walks: np.ndarray, u: int, v: int, p: float, q: float
) -> dict[str, Any]:
    """Chi-square of the third node of the walks ``u -> v -> x`` against the law."""
    walks = np.asarray(walks, dtype=np.int64)
    nv = graph.neighbours(v)
    classes, law = node2vec_law(graph, u, v, p, q)
    at_pair = walks[(walks[:, 0] == u) & (walks[:, 1] == v), 2]
    pos = np.minimum(np.searchsorted(nv, at_pair), nv.size - 1)
    inside = nv[pos] == at_pair
    counts = np.bincount(pos[inside], minlength=nv.size).astype(float)
    n = int(counts.sum())
    out: dict[str, Any] = {
        "p": p,
        "q": q,
        "pair_samples": n,
        "off_graph": int((~inside).sum()),
    }
    if n == 0:
        out.update(p_value=0.0, passed=False)
        return out
    chi2, p_value = scipy.stats.chisquare(counts, law * n)
    uniform = np.full(nv.size, 1.0 / nv.size)
    _, p_uniform = scipy.stats.chisquare(counts, uniform * n)
    names = ("return", "common", "other")
    out.update(
        chi2=float(chi2),
        dof=int(nv.size - 1),
        p_value=float(p_value),
        p_value_vs_uniform_law=float(p_uniform),
        classes={
            names[c]: {
                "neighbours": int((classes == c).sum()),
                "observed": float(counts[classes == c].sum() / n),
                "exact": float(law[classes == c].sum()),
                "uniform": float((classes == c).mean()),
            }
            for c in range(3)
            if (classes == c).any()
        },
    )
    out["passed"] = bool(out["off_graph"] == 0 and p_value >= P_VALUE_PASS)
    return out


# ----------------------------------------------------------------------------
# Implementations: each gives a Sampler for one (p, q).
# ----------------------------------------------------------------------------


@dataclasses.dataclass
class Sampler:
    """One implementation at one ``(p, q)``.

    ``prepare(starts, length)`` builds the inputs (outside the timing) and
    returns the zero-argument call that is timed; ``to_numpy`` turns its output
    into ``[walkers, length + 1]`` node ids.
    """

    kind: str  # "jax" or "python"
    prepare: Callable[[np.ndarray, int], Callable[[], Any]]
    to_numpy: Callable[[Any], np.ndarray]
    note: str
    setup_s: float = 0.0
    setup_note: str = ""


def _ours(graph: Graph, p: float, q: float, method: str | None) -> Sampler:
    from jaxsampling.kernels import graphs, walks

    start = time.perf_counter()
    g = jax.block_until_ready(graphs.from_scipy(graph.csr(), weighted=False))
    setup_s = time.perf_counter() - start
    # A different key stream for every sampler (so that the law tests of the
    # settings are independent), a different key for every call.
    base = jax.random.fold_in(jax.random.key(WALK_SEED), next(_SAMPLER_IDS))
    keys = list(jax.random.split(base, 64))

    def prepare(starts: np.ndarray, length: int) -> Callable[[], Any]:
        if method is None:
            def fn(key, graph, starts):
                return walks.uniform(key, graph, starts, length)
        else:
            def fn(key, graph, starts):
                return walks.node2vec(key, graph, starts, length, p=p, q=q, method=method)
        jitted = jax.jit(fn)
        starts_dev = jax.block_until_ready(jax.numpy.asarray(starts, jax.numpy.int32))
        calls = [0]

        def call() -> Any:
            calls[0] += 1
            return jax.block_until_ready(jitted(keys[calls[0] % len(keys)], g, starts_dev))

        return call

    what = "walks.uniform" if method is None else f"walks.node2vec(method={method!r})"
    return Sampler(
        "jax", prepare, np.asarray,
        f"jax.jit({what}), graph a jitted argument (graphs.from_scipy, unweighted)",
        setup_s, "graphs.from_scipy",
    )


def _torch_cluster(graph: Graph, p: float, q: float) -> Sampler:
    import torch
    import torch_cluster  # noqa: F401  (registers torch.ops.torch_cluster)

    rowptr = torch.from_numpy(graph.indptr.copy())
    col = torch.from_numpy(graph.indices.copy())
    torch.manual_seed(WALK_SEED)

    def prepare(starts: np.ndarray, length: int) -> Callable[[], Any]:
        start = torch.from_numpy(starts.astype(np.int64))
        op = torch.ops.torch_cluster.random_walk
        return lambda: op(rowptr, col, start, length, float(p), float(q))[0]

    path = "uniform_sampling" if p == 1 and q == 1 else "rejection_sampling"
    return Sampler(
        "python", prepare, lambda out: out.numpy(),
        f"torch.ops.torch_cluster.random_walk(rowptr, col, start, length, p, q) "
        f"(CPU {path}), rowptr built once; torch {torch.get_num_threads()} thread",
    )


@contextlib.contextmanager
def _numpy1_aliases():
    """Adds the numpy 1 aliases nptyping reads at import, then removes them."""
    added = [a for a in _NUMPY1_ALIASES if a not in np.__dict__]
    for alias in added:
        setattr(np, alias, getattr(np, _NUMPY1_ALIASES[alias]))
    try:
        yield
    finally:
        for alias in added:
            delattr(np, alias)


def _pecanpy(graph: Graph, p: float, q: float, mode: str) -> Sampler:
    import importlib
    import sys

    if "pecanpy.pecanpy" in sys.modules:
        pecanpy = sys.modules["pecanpy.pecanpy"]
    else:
        with _numpy1_aliases():
            pecanpy = importlib.import_module("pecanpy.pecanpy")
    from numba_progress import ProgressBar

    g = getattr(pecanpy, mode)(p=p, q=q, workers=1, verbose=False)
    g.indptr = graph.indptr.astype(np.uint32)
    g.indices = graph.indices.astype(np.uint32)
    g.data = np.ones(graph.num_edges, np.float32)
    g.set_node_ids(None, implicit_ids=True, num_nodes=graph.num_nodes)
    start = time.perf_counter()
    g._preprocess_transition_probs()  # PreComp: the second-order alias tables
    setup_s = time.perf_counter() - start
    move_forward, has_nbrs = g.get_move_forward(), g.get_has_nbrs()

    def prepare(starts: np.ndarray, length: int) -> Callable[[], Any]:
        starts = starts.astype(np.uint32)

        def call() -> Any:
            with ProgressBar(total=starts.size, disable=True) as progress:
                return g._random_walks(
                    starts.size, length, None, starts, has_nbrs, move_forward, progress
                )

        return call

    def to_numpy(out: np.ndarray) -> np.ndarray:
        # The last column holds the walk's effective length (length + 1 in full).
        if (out[:, -1] != out.shape[1] - 1).any():
            raise RuntimeError("a PecanPy walk ended early (node without neighbours)")
        return out[:, :-1]

    setup_note = ""
    if mode == "PreComp":
        tables = int((np.diff(graph.indptr) ** 2).sum())
        setup_note = (
            f"preprocess_transition_probs: alias tables of all {tables:,} second-order "
            "transitions (numba JIT included)"
        )
    return Sampler(
        "python", prepare, to_numpy,
        f"{mode}._random_walks (numba; 1 thread), the kernel of simulate_walks "
        "without its mapping of indices to string IDs",
        setup_s, setup_note,
    )


def _graph_walker(graph: Graph, p: float, q: float) -> Sampler:
    import _walker
    from sklearn.preprocessing import normalize

    # walker.preprocessing.get_normalized_adjacency: float32, rows summing to 1.
    A = normalize(graph.csr(np.float32), norm="l1", axis=1, copy=False)
    indptr = A.indptr.astype(np.uint32)
    indices = A.indices.astype(np.uint32)
    data = A.data.astype(np.float32)

    def prepare(starts: np.ndarray, length: int) -> Callable[[], Any]:
        starts = starts.astype(np.uint32)
        if p == 1 and q == 1:
            return lambda: _walker.random_walks(indptr, indices, data, starts, 1, length + 1)
        return lambda: _walker.node2vec_random_walks(
            indptr, indices, data, starts, 1, length + 1, float(p), float(q)
        )

    fn = "random_walks" if p == 1 and q == 1 else "node2vec_random_walks"
    return Sampler(
        "python", prepare, np.asarray,
        f"_walker.{fn} (C++; starts hardware_concurrency() = {os.cpu_count()} threads, "
        "pinned to the one core) on the l1-normalised float32 CSR",
    )


def _csrgraph(graph: Graph, p: float, q: float) -> Sampler:
    import csrgraph
    from csrgraph import random_walks as kernels

    G = csrgraph.csrgraph(graph.csr(np.float32), threads=1)
    T = G.normalize(return_self=False)
    # csrgraph multiplies the weight of the previous node by return_weight and of
    # the previous node's neighbours by neighbor_weight (others: 1); node2vec's
    # 1/p : 1 : 1/q is q/p : q : 1.
    return_weight, neighbor_weight = q / p, q

    def prepare(starts: np.ndarray, length: int) -> Callable[[], Any]:
        starts = starts.astype(np.int64)
        if p == 1 and q == 1:
            return lambda: kernels._random_walk(T.weights, T.src, T.dst, starts, length + 1)
        return lambda: kernels._node2vec_walks(
            T.weights, T.src, T.dst, starts, length + 1, return_weight, neighbor_weight
        )

    if p == 1 and q == 1:
        note = "_random_walk (numba, 1 thread) on the normalised graph"
    else:
        note = (
            f"_node2vec_walks (numba, 1 thread), return_weight = q/p = {return_weight:g}, "
            f"neighbor_weight = q = {neighbor_weight:g}"
        )
    return Sampler("python", prepare, np.asarray, note)


def uniform_factories() -> dict[str, Callable[[Graph, float, float], Sampler]]:
    return {
        OURS: lambda g, p, q: _ours(g, p, q, None),
        TORCH: _torch_cluster,
        PECANPY: lambda g, p, q: _pecanpy(g, p, q, "FirstOrderUnweighted"),
        GRAPH_WALKER: _graph_walker,
        CSRGRAPH: _csrgraph,
    }


def node2vec_factories() -> dict[str, Callable[[Graph, float, float], Sampler]]:
    return {
        OURS: lambda g, p, q: _ours(g, p, q, "rejection"),
        OURS_EXACT: lambda g, p, q: _ours(g, p, q, "exact"),
        TORCH: _torch_cluster,
        PECANPY_OTF: lambda g, p, q: _pecanpy(g, p, q, "SparseOTF"),
        PECANPY_PRECOMP: lambda g, p, q: _pecanpy(g, p, q, "PreComp"),
        GRAPH_WALKER: _graph_walker,
        CSRGRAPH: _csrgraph,
    }


# ----------------------------------------------------------------------------
# Interleaved timing.
# ----------------------------------------------------------------------------


def _error(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


@dataclasses.dataclass
class Entry:
    """One implementation being timed on one case."""

    name: str
    sampler: Sampler
    check: EdgeCheck
    starts: np.ndarray
    length: int
    call: Callable[[], Any]
    stride: int
    probe: dict[str, Any]
    first_call_s: float
    samples: list[float] = dataclasses.field(default_factory=list)
    busy: float = 0.0  # sum of background_cores * wall over the timed calls
    wall: float = 0.0
    error: str | None = None

    def run_once(self, timed: bool) -> None:
        load: dict[str, Any] = {}
        with background_load(load):
            start = time.perf_counter()
            out = self.call()
            elapsed = time.perf_counter() - start
        if timed:
            self.samples.append(elapsed)
            if "background_cores" in load:
                self.busy += load["background_cores"] * elapsed
                self.wall += elapsed
        self.check(self.sampler.to_numpy(out), self.starts, self.length)


def _probe_and_first_call(
    name: str, sampler: Sampler, graph: Graph, length: int, check: EdgeCheck,
    probe_walkers: int, max_call_s: float,
) -> Entry:
    n = graph.num_nodes
    all_starts = np.arange(n, dtype=np.int64)
    probe_stride = max(1, n // probe_walkers)
    probe_starts = all_starts[::probe_stride]
    call = sampler.prepare(probe_starts, length)
    times = []
    for _ in range(2):
        start = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - start)
        check(sampler.to_numpy(out), probe_starts, length)
    estimate = times[1] * n / probe_starts.size
    stride = 1 if estimate <= max_call_s else int(math.ceil(estimate / max_call_s))
    starts = all_starts[::stride]
    probe = {
        "walkers": int(probe_starts.size),
        "first_s": times[0],
        "second_s": times[1],
        "estimated_full_call_s": estimate,
    }
    call = sampler.prepare(starts, length)
    gc.collect()
    start = time.perf_counter()
    out = call()
    first_call_s = time.perf_counter() - start
    check(sampler.to_numpy(out), starts, length)
    del out
    return Entry(name, sampler, check, starts, length, call, stride, probe, first_call_s)


def _interleave(entries: list[Entry], repeats: int, warmup: int) -> None:
    """Warm-up rounds then timed rounds, each calling every entry once (rotated)."""
    for r in range(warmup + repeats):
        live = [e for e in entries if e.error is None]
        if not live:
            return
        shift = r % len(live)
        for entry in live[shift:] + live[:shift]:
            try:
                entry.run_once(timed=r >= warmup)
            except Exception as err:  # an implementation's failure is a result
                entry.error = _error(err)
        print(f"    round {r + 1}/{warmup + repeats}", flush=True)


def _record(entry: Entry, graph: Graph) -> dict[str, Any]:
    if entry.error is not None:
        return {"error": entry.error}
    scale = graph.num_nodes / entry.starts.size
    median = statistics.median(entry.samples)
    if entry.sampler.kind == "jax":
        compile_s = max(0.0, entry.first_call_s - median)
    else:
        compile_s = max(0.0, entry.probe["first_s"] - entry.probe["second_s"])
    summary = timing._summarise(  # noqa: SLF001 (the shared summary)
        [s * scale for s in entry.samples], compile_s, entry.first_call_s, 1
    ).to_json()
    record = {
        **summary,
        "walkers": int(entry.starts.size),
        "stride": entry.stride,
        "length": entry.length,
        "measured_median_s": median,
        "msteps_per_s": entry.starts.size * entry.length / median / 1e6,
        "probe": entry.probe,
        "setup_s": entry.sampler.setup_s,
        "setup": entry.sampler.setup_note or None,
        "implementation": entry.sampler.note,
    }
    if entry.wall > 0:
        record["background_cores"] = round(entry.busy / entry.wall, 3)
    return record


# ----------------------------------------------------------------------------
# Cases.
# ----------------------------------------------------------------------------


def _pair_walks(sampler: Sampler, u: int, walkers: int) -> np.ndarray:
    call = sampler.prepare(np.full(walkers, u, dtype=np.int64), 2)
    return sampler.to_numpy(call())


def _law_tests(
    graph: Graph,
    name: str,
    factory: Callable[[Graph, float, float], Sampler],
    timed_sampler: Sampler | None,
    timed_pq: tuple[float, float],
    settings: tuple[tuple[float, float], ...],
    pair: tuple[int, int],
    walkers: int,
) -> list[dict[str, Any]]:
    u, v = pair
    tests = []
    for p, q in settings:
        try:
            if timed_sampler is not None and (p, q) == timed_pq:
                sampler = timed_sampler
            else:
                sampler = factory(graph, p, q)
            start = time.perf_counter()
            test = law_test(graph, _pair_walks(sampler, u, walkers), u, v, p, q)
            test["wall_s"] = time.perf_counter() - start
        except Exception as err:
            test = {"p": p, "q": q, "error": _error(err), "passed": False}
        tests.append(test)
        shown = test.get("p_value", test.get("error"))
        print(f"    law test {name:22s} p={p:g} q={q:g}: p-value {shown}", flush=True)
    return tests


def _accuracy(check: EdgeCheck, tests: list[dict[str, Any]]) -> dict[str, Any]:
    values = [t.get("p_value", 0.0) for t in tests]
    passed = check.ok and all(t.get("passed") for t in tests)
    return {
        "metric": (
            "smallest chi-square p-value of the transition law at the (u, v) pair "
            f"(pass: >= {P_VALUE_PASS:g} and no off-graph step)"
        ),
        "value": min(values) if values else None,
        "runs": sum(t.get("pair_samples", 0) for t in tests),
        "passed": bool(passed),
        "edges": check.to_json(),
        "law_tests": tests,
    }


def _short(tests: list[dict[str, Any]]) -> str:
    parts = []
    for t in tests:
        label = "uniform" if (t["p"], t["q"]) == (1.0, 1.0) else f"p={t['p']:g},q={t['q']:g}"
        parts.append(f"{label}: {t['p_value']:.2g}" if "p_value" in t else f"{label}: failed")
    return "law p-values " + ", ".join(parts)


def walk_case(
    kind: str,
    graph: Graph,
    length: int,
    repeats: int,
    quick: bool,
    pair: tuple[int, int],
) -> dict[str, Any]:
    """One case: every implementation timed (interleaved) and checked."""
    if kind == "uniform":
        name, (p, q) = f"uniform n={graph.num_nodes} length={length}", (1.0, 1.0)
        factories, settings = uniform_factories(), ((1.0, 1.0),)
    else:
        name, (p, q) = f"node2vec p={P:g} q={Q:g} n={graph.num_nodes} length={length}", (P, Q)
        factories, settings = node2vec_factories(), PAIR_SETTINGS
    print(f"[walks] {name}", flush=True)
    kernel = _off_graph_kernel()
    max_call_s = QUICK_MAX_CALL_S if quick else MAX_CALL_S
    probe_walkers = QUICK_PROBE_WALKERS if quick else PROBE_WALKERS
    results: dict[str, dict[str, Any]] = {}
    entries: list[Entry] = []
    for impl, factory in factories.items():
        try:
            sampler = factory(graph, p, q)
        except ImportError as err:
            results[impl] = {"skipped": _error(err), "note": f"skipped: {_error(err)}"}
            print(f"    {impl:22s} skipped: {_error(err)}", flush=True)
            continue
        except Exception as err:
            results[impl] = {"error": _error(err)}
            print(f"    {impl:22s} FAILED: {_error(err)}", flush=True)
            continue
        try:
            entry = _probe_and_first_call(
                impl, sampler, graph, length, EdgeCheck(graph, kernel), probe_walkers,
                max_call_s,
            )
        except Exception as err:
            results[impl] = {"error": _error(err)}
            print(f"    {impl:22s} FAILED: {_error(err)}", flush=True)
            continue
        entries.append(entry)
        results[impl] = {}
        print(
            f"    {impl:22s} first call {entry.first_call_s:8.3f} s, walkers "
            f"{entry.starts.size} (probe estimate {entry.probe['estimated_full_call_s']:.2f} s)",
            flush=True,
        )
    _interleave(entries, repeats, WARMUP_ROUNDS)
    walkers = QUICK_PAIR_WALKERS if quick else PAIR_WALKERS
    for entry in entries:
        record = _record(entry, graph)
        tests = _law_tests(
            graph, entry.name, factories[entry.name], entry.sampler, (p, q), settings,
            pair, walkers,
        )
        entry.sampler = None  # type: ignore[assignment]  (frees PreComp tables)
        entry.call = None  # type: ignore[assignment]
        gc.collect()
        if "error" not in record:
            record["accuracy"] = _accuracy(entry.check, tests)
            sub = "" if entry.stride == 1 else (
                f"; on {entry.starts.size} walkers (starts[::{entry.stride}]), time scaled"
            )
            edges = entry.check.to_json()
            record["note"] = (
                f"{record['msteps_per_s']:.3g} M steps/s{sub}; off-graph steps "
                f"{edges['off_graph_steps']}/{edges['steps_checked']}; {_short(tests)}"
                + (f"; setup {record['setup_s']:.3g} s" if record["setup_s"] > 0.5 else "")
            )
            print(
                f"    {entry.name:22s} median {record['median_s'] * 1e3:9.1f} ms  "
                f"{record['msteps_per_s']:7.2f} M steps/s  compile {record['compile_s']:6.2f} s"
                f"  off-graph {edges['off_graph_steps']}  passed {record['accuracy']['passed']}",
                flush=True,
            )
        results[entry.name] = record
    ours = results.get(OURS, {}).get("median_s")
    ratios = {
        impl: rec["median_s"] / ours
        for impl, rec in results.items()
        if impl != OURS and ours and "median_s" in rec
    }
    u, v = pair
    return {
        "name": name,
        "workload": (
            f"Barabasi-Albert graph, n = {graph.num_nodes}, m = {BA_M}, seed {GRAPH_SEED} "
            f"({graph.num_edges} directed edges); one walker per node, {length} steps; "
            + ("uniform walks" if kind == "uniform" else f"node2vec p = {P:g}, q = {Q:g}")
        ),
        "baseline": TORCH if TORCH in results and "median_s" in results[TORCH] else OURS,
        "implementations": results,
        "ratios": ratios,
        "num_nodes": graph.num_nodes,
        "length": length,
        "p": p,
        "q": q,
        "law_pair": {
            "u": u, "v": v,
            "degree_u": int(graph.indptr[u + 1] - graph.indptr[u]),
            "degree_v": int(graph.indptr[v + 1] - graph.indptr[v]),
            "common_neighbours": int(
                np.intersect1d(graph.neighbours(u), graph.neighbours(v)).size
            ),
            "walkers": walkers,
            "settings": [list(s) for s in settings],
        },
    }


# ----------------------------------------------------------------------------
# Threads, goals and the suite.
# ----------------------------------------------------------------------------


def single_core() -> dict[str, Any]:
    """Pins every thread of the process to one core and sets the thread variables.

    Threads started later (XLA, numba, torch, graph-walker) inherit the affinity.
    """
    for var in _THREAD_VARS:
        os.environ[var] = "1"
    info: dict[str, Any] = {"env": {var: os.environ[var] for var in _THREAD_VARS}}
    if not hasattr(os, "sched_setaffinity"):
        info["pinned_core"] = None
        return info
    allowed = sorted(os.sched_getaffinity(0))
    busy = _core_busy(allowed)
    # The idlest allowed core (ties: the last), so that another pinned job is avoided.
    core = min(reversed(allowed), key=lambda c: busy.get(c, 0.0))
    pinned = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), {core})
            pinned += 1
        except OSError:
            pass
    info.update(
        pinned_core=core, allowed_before=allowed, threads_pinned=pinned,
        core_busy_before={str(c): round(b, 3) for c, b in busy.items()},
    )
    return info


def _core_busy(cores: list[int], seconds: float = 1.0) -> dict[int, float]:
    """Busy fraction of each core over ``seconds`` (``/proc/stat``; empty elsewhere)."""

    def read() -> dict[int, tuple[float, float]]:
        out = {}
        try:
            with open("/proc/stat") as stat:
                for line in stat:
                    name, *fields = line.split()
                    if name.startswith("cpu") and name[3:].isdigit():
                        v = [float(x) for x in fields[:8]]
                        out[int(name[3:])] = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7], sum(v))
        except OSError:
            return {}
        return out

    before = read()
    time.sleep(seconds)
    after = read()
    return {
        c: (after[c][0] - before[c][0]) / max(after[c][1] - before[c][1], 1e-9)
        for c in cores
        if c in before and c in after
    }


def _libraries_single_thread() -> dict[str, Any]:
    out: dict[str, Any] = {}
    import numba

    numba.set_num_threads(1)
    out["numba_threads"] = numba.get_num_threads()
    try:
        import torch
    except ImportError:
        return out
    torch.set_num_threads(1)
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    out["torch_threads"] = torch.get_num_threads()
    out["torch_interop_threads"] = torch.get_num_interop_threads()
    return out


def _x(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.2f}x"


def goals(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's goals, checked on the measured cases."""
    out = []
    for case in cases:
        uniform = case["name"].startswith("uniform")
        target = GOAL_UNIFORM if uniform else GOAL_NODE2VEC
        impls = case["implementations"]
        ours = impls.get(OURS, {})
        ratio = case["ratios"].get(TORCH)
        ours_rows = [OURS] if uniform else [OURS, OURS_EXACT]
        exact = all(impls.get(r, {}).get("accuracy", {}).get("passed") for r in ours_rows)
        laws = "; ".join(
            f"{r}: {_short(impls[r]['accuracy']['law_tests'])}, off-graph steps "
            f"{impls[r]['accuracy']['edges']['off_graph_steps']}"
            for r in ours_rows
            if "accuracy" in impls.get(r, {})
        )
        torch_rate = impls.get(TORCH, {}).get("msteps_per_s")
        measured = (
            f"{_x(ratio)} torch_cluster ("
            + (f"{ours['msteps_per_s']:.3g}" if "msteps_per_s" in ours else "n/a")
            + " vs "
            + (f"{torch_rate:.3g}" if torch_rate else "n/a")
            + f" M steps/s); {laws}"
        )
        goal = (
            f"uniform walks at least {GOAL_UNIFORM:g}x torch_cluster"
            if uniform
            else f"node2vec (p = {P:g}, q = {Q:g}) at least {GOAL_NODE2VEC:g}x "
            "torch_cluster, exact for every p, q"
        )
        out.append({
            "goal": goal + f" ({case['num_nodes']} walkers x {case['length']} steps, one core)",
            "measured": measured,
            "ratio": ratio,
            "met": bool(ratio is not None and ratio >= target and exact),
        })
    return out


def correctness_notes(cases: list[dict[str, Any]]) -> list[str]:
    """One note per case listing the implementations that failed a check."""
    notes = []
    for case in cases:
        bad = []
        for impl, rec in case["implementations"].items():
            acc = rec.get("accuracy")
            if acc is None or acc["passed"]:
                continue
            why = []
            edges = acc["edges"]
            if edges["off_graph_steps"]:
                why.append(
                    f"{edges['off_graph_steps']} of {edges['steps_checked']} steps to a "
                    "non-neighbour"
                )
            for t in acc["law_tests"]:
                if not t.get("passed"):
                    if "p_value" in t:
                        why.append(
                            f"law at p={t['p']:g}, q={t['q']:g} rejected (chi-square "
                            f"p-value {t['p_value']:.2g}; against the uniform law "
                            f"{t['p_value_vs_uniform_law']:.2g})"
                        )
                    else:
                        why.append(f"law test at p={t['p']:g}, q={t['q']:g} failed")
            bad.append(f"{impl}: " + "; ".join(why))
        notes.append(
            f"{case['name']}: "
            + ("every implementation passed the edge and law checks." if not bad
               else "failed checks: " + " | ".join(bad) + ".")
        )
    return notes


def run(quick: bool = False, repeats: int | None = None) -> dict[str, Any]:
    """Runs the walks suite.

    Args:
      quick: Smoke mode: n = 10,000, 20 steps, fewer law-test walkers, 3 repeats.
      repeats: Timed rounds (every implementation once a round). Default 5 (3 quick).

    Returns:
      The suite's results: ``workload``, ``notes``, ``protocol``, ``threads``,
      ``cases`` and ``goals``.
    """
    threads = single_core()  # before anything starts a thread pool
    threads.update(_libraries_single_thread())
    blas = BlasThreads()
    if repeats is None:
        repeats = QUICK_REPEATS if quick else DEFAULT_REPEATS
    n = QUICK_NUM_NODES if quick else NUM_NODES
    length = QUICK_LENGTH if quick else LENGTH
    with blas.limit(1):
        threads["blas"] = blas.info()
        graph = barabasi_albert(n)
        pair = choose_pair(graph)
        print(
            f"[walks] graph n={n} edges={graph.num_edges} built in {graph.build_s:.1f} s; "
            f"law pair {pair}; threads {threads}",
            flush=True,
        )
        cases = [
            walk_case("uniform", graph, length, repeats, quick, pair),
            walk_case("node2vec", graph, length, repeats, quick, pair),
        ]
    notes = [
        "One process pinned to one core (the idlest; os.sched_setaffinity on every "
        "thread before any thread pool starts), one thread per library (torch, numba, BLAS; XLA's "
        "threads share the core). Median per call of the whole workload; msteps_per_s "
        "= walkers x steps / median / 1e6; repetitions interleaved across "
        "implementations (see protocol).",
        "Anchors are timed on their walk kernels with their graph structures built "
        "once: torch.ops.torch_cluster.random_walk on (rowptr, col); PecanPy "
        "_random_walks (simulate_walks without the mapping to string IDs); "
        "graph-walker _walker.* on the normalised CSR; csrgraph _random_walk / "
        "_node2vec_walks on the normalised graph. PecanPy PreComp's "
        "precomputation of all second-order alias tables is setup_s (not in the median).",
        "csrgraph multiplies the previous node's weight by return_weight and its "
        "neighbours' by neighbor_weight; node2vec's law needs return_weight = q/p and "
        "neighbor_weight = q (its docstring's 1/p and 1/q give another law).",
        "PecanPy 2.0.9 imports nptyping 2.5, which reads numpy 1 aliases (np.bool8, ...) "
        "removed in numpy 2: the suite defines them only while importing PecanPy.",
        "Rows marked 'time scaled' ran on a strided subset of the walkers "
        f"(starts[::stride]) because a full call would exceed {MAX_CALL_S:g} s "
        f"({QUICK_MAX_CALL_S:g} s quick); their median is scaled to all walkers.",
        "Error column: the smallest chi-square p-value of the one-step law after "
        "(u, v) (uniform: uniform law; node2vec: p, q in "
        + ", ".join(f"({a:g}, {b:g})" for a, b in PAIR_SETTINGS)
        + f"); a row passes with every p-value >= {P_VALUE_PASS:g} and no step to a "
        "non-neighbour over every walk it returned while timed.",
    ]
    notes += correctness_notes(cases)
    notes += load_notes(cases)
    return {
        "workload": (
            f"networkx.barabasi_albert_graph({n}, {BA_M}, seed={GRAPH_SEED}) as CSR with "
            f"both directions ({graph.num_edges} directed edges, built in "
            f"{graph.build_s:.1f} s); {n} walkers (one per node), {length} steps; uniform "
            f"and node2vec (p = {P:g}, q = {Q:g}) walks; one core."
        ),
        "notes": notes,
        "protocol": PROTOCOL,
        "anchor_packages": ANCHOR_PACKAGES,
        "threads": threads,
        "cases": cases,
        "goals": goals(cases),
    }
