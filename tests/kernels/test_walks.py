"""Tests for jaxsampling.kernels.walks: exact laws by chi-square, dangling nodes, transforms."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxsampling import sharding, testing
from jaxsampling.kernels import graphs, walks

# A small undirected graph with triangles, squares, a hub-ish node and a leaf (7).
_EDGES = [(0, 1), (0, 2), (1, 2), (2, 3), (3, 4), (3, 5), (4, 5), (5, 6), (6, 7), (1, 3), (0, 6)]
_WEIGHTS = [1.0, 3.0, 0.5, 2.0, 1.0, 4.0, 0.25, 1.0, 2.0, 1.5, 0.0]  # 0 -- 6 weighs nothing
NUM = 8


def _small(weighted=False):
    s, r = zip(*_EDGES)
    return graphs.from_edges(s, r, num_nodes=NUM, symmetric=True,
                             weights=_WEIGHTS if weighted else None)


def _dense(g):
    """Dense weight matrix (1 per edge when unweighted)."""
    indptr, indices = np.asarray(g.indptr), np.asarray(g.indices)
    rows = np.repeat(np.arange(g.num_nodes), np.diff(indptr))
    w = np.ones(indices.size) if g.weights is None else np.asarray(g.weights, np.float64)
    A = np.zeros((g.num_nodes, g.num_nodes))
    A[rows, indices] = w
    return A


def _row_normalised(A):
    return A / A.sum(1, keepdims=True)


def _law_after(P_matrix, start, t, restart=0.0):
    v = np.zeros(P_matrix.shape[0])
    v[start] = 1.0
    for _ in range(t):
        v = (1 - restart) * v @ P_matrix
        v[start] += restart
    return v


def _histogram(values, n):
    return np.bincount(np.asarray(values).ravel(), minlength=n)


def _n2v_next(A, u, v, p, q):
    """The exact node2vec law of the next node given previous u and current v."""
    a = np.where(np.arange(len(A)) == u, 1 / p, np.where(A[u] > 0, 1.0, 1 / q))
    w = A[v] * a
    return w / w.sum()


def _n2v_triples(A, start, p, q):
    """P(X_1, X_2, X_3 | X_0 = start) for node2vec, as an (n, n, n) array."""
    n = len(A)
    law = np.zeros((n, n, n))
    first = A[start] / A[start].sum()
    for x1 in np.flatnonzero(first):
        second = _n2v_next(A, start, x1, p, q)
        for x2 in np.flatnonzero(second):
            law[x1, x2] = first[x1] * second[x2] * _n2v_next(A, x1, x2, p, q)
    return law


def _triples_counts(w, n):
    idx = (np.asarray(w[:, 1]) * n + np.asarray(w[:, 2])) * n + np.asarray(w[:, 3])
    return np.bincount(idx, minlength=n**3).reshape(n, n, n)


# --------------------------------------------------------------------------- #
# Exact laws.
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("t", [1, 6])
def test_uniform_law_of_x_t(t):
    g = graphs.karate_club()
    w = walks.uniform(jax.random.key(t), g, jnp.zeros(20_000, jnp.int32), 6)
    assert bool(walks.follows_edges(g, w))
    expected = _law_after(_row_normalised(_dense(g)), 0, t)
    testing.assert_chi_square(_histogram(w[:, t], 34), expected)


def test_uniform_and_metropolis_hastings_reach_their_stationary_laws():
    # The exact laws after 80 (simple walk) and 300 (Metropolis-Hastings, uniform
    # target: it mixes slower) steps are within 1e-4 (TV) of the stationary ones.
    g = graphs.karate_club()
    degree = np.diff(np.asarray(g.indptr)).astype(float)
    for law, stationary in ((_law_after(_row_normalised(_dense(g)), 0, 80), degree / degree.sum()),
                            (_law_after(_mh_dense(g, None), 0, 300), np.full(34, 1 / 34))):
        assert 0.5 * np.abs(law - stationary).sum() < 1e-4
    starts = jnp.zeros(20_000, jnp.int32)
    w = walks.uniform(jax.random.key(12), g, starts, 80)
    testing.assert_chi_square(_histogram(w[:, -1], 34), degree / degree.sum())
    w = walks.metropolis_hastings(jax.random.key(13), g, starts, 300)
    testing.assert_chi_square(_histogram(w[:, -1], 34), np.full(34, 1 / 34))


def test_uniform_ignores_weights_and_weighted_follows_them():
    g = _small(weighted=True)
    starts = jnp.full(30_000, 3, jnp.int32)
    u = walks.uniform(jax.random.key(0), g, starts, 3)
    testing.assert_chi_square(
        _histogram(u[:, 3], NUM), _law_after(_row_normalised(_dense(_small())), 3, 3))
    w = walks.weighted(jax.random.key(1), g, starts, 3)
    testing.assert_chi_square(_histogram(w[:, 3], NUM), _law_after(_row_normalised(_dense(g)), 3, 3))


def test_weighted_never_takes_a_zero_weight_edge():
    g = _small(weighted=True)
    w = walks.weighted(jax.random.key(2), g, jnp.zeros(20_000, jnp.int32), 1)
    assert not np.any(np.asarray(w[:, 1]) == 6)  # 0 -- 6 has weight 0
    testing.assert_chi_square(_histogram(w[:, 1], NUM), _row_normalised(_dense(g))[0])


def test_cumulative_weights_are_row_local_running_sums():
    g = _small(weighted=True)
    indptr, w = np.asarray(g.indptr), np.asarray(g.weights)
    expected = np.concatenate([np.cumsum(w[a:b]) for a, b in zip(indptr[:-1], indptr[1:])])
    np.testing.assert_allclose(walks.cumulative_weights(g), expected, rtol=1e-6)


def test_restart_law():
    g = graphs.karate_club()
    c = 0.3
    w = walks.uniform(jax.random.key(3), g, jnp.full(20_000, 5, jnp.int32), 4, restart_prob=c)
    assert bool(walks.follows_edges(g, jnp.where(w == 5, -1, w)))  # moves other than restarts
    expected = _law_after(_row_normalised(_dense(g)), 5, 4, restart=c)
    testing.assert_chi_square(_histogram(w[:, 4], 34), expected)
    w = walks.weighted(jax.random.key(4), _small(True), jnp.zeros(20_000, jnp.int32), 3,
                       restart_prob=c)
    expected = _law_after(_row_normalised(_dense(_small(True))), 0, 3, restart=c)
    testing.assert_chi_square(_histogram(w[:, 3], NUM), expected)


def _mh_dense(g, log_target):
    edge, stay = walks.metropolis_hastings_probabilities(g, log_target)
    M = _dense(graphs.CSRGraph(g.indptr, g.indices, edge))
    return M + np.diag(np.asarray(stay))


def test_metropolis_hastings_matrix_is_reversible_for_its_target():
    g = graphs.karate_club()
    log_target = jnp.linspace(-2.0, 1.0, 34)
    M = _mh_dense(g, log_target)
    pi = np.exp(np.asarray(log_target, np.float64))
    pi /= pi.sum()
    np.testing.assert_allclose(M.sum(1), 1, atol=1e-6)
    flow = pi[:, None] * M
    np.testing.assert_allclose(flow, flow.T, atol=1e-7)
    # Uniform target: P_ij = min(1/d_i, 1/d_j), doubly stochastic.
    d = np.diff(np.asarray(g.indptr))
    U = _mh_dense(g, None)
    A = _dense(g)
    np.testing.assert_allclose(U * A, A * np.minimum(1 / d[:, None], 1 / d[None, :]), rtol=1e-6)
    np.testing.assert_allclose(U.sum(0), 1, atol=1e-6)


@pytest.mark.parametrize("log_target", [None, "ramp"])
def test_metropolis_hastings_law_of_x_t(log_target):
    g = graphs.karate_club()
    lt = None if log_target is None else jnp.linspace(-2.0, 1.0, 34)
    w = walks.metropolis_hastings(jax.random.key(5), g, jnp.full(20_000, 33, jnp.int32), 5,
                                  log_target=lt)
    assert bool(walks.follows_edges(g, w))
    testing.assert_chi_square(_histogram(w[:, 5], 34), _law_after(_mh_dense(g, lt), 33, 5))


def test_non_backtracking_law_of_three_steps():
    g = _small()
    A = _dense(g)
    start = 5
    law = np.zeros((NUM, NUM, NUM))
    d = A.sum(1)
    for x1 in np.flatnonzero(A[start]):
        for x2 in np.flatnonzero(A[x1]):
            if x2 == start and d[x1] > 1:
                continue
            p2 = 1 / (d[x1] - 1) if d[x1] > 1 else 1.0
            for x3 in np.flatnonzero(A[x2]):
                if x3 == x1 and d[x2] > 1:
                    continue
                p3 = 1 / (d[x2] - 1) if d[x2] > 1 else 1.0
                law[x1, x2, x3] = p2 * p3 / d[start]
    assert np.isclose(law.sum(), 1)
    w = walks.non_backtracking(jax.random.key(6), g, jnp.full(40_000, start, jnp.int32), 3)
    assert bool(walks.follows_edges(g, w))
    testing.assert_chi_square(_triples_counts(w, NUM), law)
    # From the leaf 7 the walk must go to 6 and on, never straight back.
    w = walks.non_backtracking(jax.random.key(7), g, jnp.full(100, 7, jnp.int32), 2)
    assert np.all(np.asarray(w[:, 1]) == 6) and not np.any(np.asarray(w[:, 2]) == 7)


@pytest.mark.parametrize(
    "method, weighted, p, q",
    [
        ("rejection", True, 0.5, 2.0),
        ("rejection", False, 4.0, 0.25),
        ("exact", False, 0.5, 2.0),
        pytest.param("rejection", False, 0.5, 2.0, marks=pytest.mark.slow),
        pytest.param("rejection", True, 4.0, 0.25, marks=pytest.mark.slow),
        pytest.param("exact", True, 0.5, 2.0, marks=pytest.mark.slow),
        pytest.param("exact", False, 4.0, 0.25, marks=pytest.mark.slow),
        pytest.param("exact", True, 4.0, 0.25, marks=pytest.mark.slow),
    ],
)
def test_node2vec_law_of_three_steps(method, weighted, p, q):
    g = _small(weighted)
    w = walks.node2vec(jax.random.key(8), g, jnp.full(40_000, 3, jnp.int32), 3, p=p, q=q,
                       method=method)
    assert bool(walks.follows_edges(g, w))
    testing.assert_chi_square(_triples_counts(w, NUM), _n2v_triples(_dense(g), 3, p, q))


@pytest.mark.parametrize("method", ["rejection", "exact"])
def test_node2vec_on_karate_matches_the_exact_step_law(method):
    # Many walkers, longer walks: the (X_4, X_5) transition at the busiest pair.
    g = graphs.karate_club()
    A = _dense(g)
    p, q = 0.5, 2.0
    w = np.asarray(walks.node2vec(jax.random.key(9), g, jnp.arange(34).repeat(300), 6, p=p, q=q,
                                  method=method))
    pairs = w[:, 4] * 34 + w[:, 5]
    u, v = divmod(int(np.bincount(pairs).argmax()), 34)
    sel = (w[:, 4] == u) & (w[:, 5] == v)
    testing.assert_chi_square(_histogram(w[sel, 6], 34), _n2v_next(A, u, v, p, q))


def test_node2vec_p_q_one_is_the_uniform_walk():
    g = _small()
    w = walks.node2vec(jax.random.key(10), g, jnp.full(20_000, 0, jnp.int32), 3)
    testing.assert_chi_square(_histogram(w[:, 3], NUM),
                              _law_after(_row_normalised(_dense(g)), 0, 3))


def test_wide_multiply_is_exact():
    rng = np.random.default_rng(0)
    x = np.concatenate([[0, 1, 2**16 - 1, 2**16, 2**31, 2**32 - 1],
                        rng.integers(0, 2**32, 200)]).astype(np.uint32)
    y = np.concatenate([[2**32 - 1, 0, 1, 65535, 65536, 7],
                        rng.integers(0, 2**32, 200)]).astype(np.uint32)
    high, low = walks._multiply_wide(jnp.asarray(x), jnp.asarray(y))
    product = [int(a) * int(b) for a, b in zip(x, y)]
    assert np.asarray(high).tolist() == [p >> 32 for p in product]
    assert np.asarray(low).tolist() == [p & (2**32 - 1) for p in product]


@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.2, 0.4, 0.7, 1.0])
def test_compacted_adjacency_equals_the_full_search(fraction):
    # Each fraction of searching lanes lands in another lax.switch branch (64 lanes:
    # capacities 4, 8, 16, 32, then all).
    g = graphs.karate_club()
    rng = np.random.default_rng(int(fraction * 100))
    u = jnp.asarray(rng.integers(-1, 34, 64), jnp.int32)
    x = jnp.asarray(rng.integers(0, 34, 64), jnp.int32)
    search = jnp.asarray(rng.uniform(size=64) < fraction)
    full = walks._adjacent(g, jnp.where(search, u, -1), x, walks._Layout(None))
    np.testing.assert_array_equal(jax.jit(walks._adjacent_compacted)(g, u, x, search), full)
    A = _dense(g) > 0
    expected = [bool(s and a >= 0 and A[a, b]) for s, a, b in zip(search, u, x)]
    np.testing.assert_array_equal(full, expected)


def test_length_zero_and_one():
    g = _small()
    starts = jnp.array([0, 4])
    for fn in (walks.uniform, walks.weighted, walks.metropolis_hastings, walks.non_backtracking,
               walks.node2vec):
        assert fn(jax.random.key(0), g, starts, 0).tolist() == [[0], [4]]
        w = fn(jax.random.key(0), g, starts, 1)
        assert w.shape == (2, 2) and bool(walks.follows_edges(g, w))


# --------------------------------------------------------------------------- #
# Dangling nodes and bad input.
# --------------------------------------------------------------------------- #

_CHAIN = graphs.from_edges([0, 1], [1, 2], num_nodes=3)  # 2 has no out-edges
_SAMPLERS = {
    "uniform": walks.uniform,
    "weighted": walks.weighted,
    "metropolis_hastings": walks.metropolis_hastings,
    "non_backtracking": walks.non_backtracking,
    "node2vec": walks.node2vec,
    "node2vec_exact": functools.partial(walks.node2vec, method="exact"),
}


@pytest.mark.parametrize("name", sorted(_SAMPLERS))
def test_dangling_policies(name):
    fn = _SAMPLERS[name]
    key, starts = jax.random.key(0), jnp.array([0])
    with pytest.raises(ValueError, match="dangling node"):
        fn(key, _CHAIN, starts, 4)
    if name == "metropolis_hastings":  # 1 -> 2 is always rejected on this directed graph
        assert fn(key, _CHAIN, starts, 4, dangling="stay").tolist() == [[0, 1, 1, 1, 1]]
        return
    assert fn(key, _CHAIN, starts, 4, dangling="stay").tolist() == [[0, 1, 2, 2, 2]]
    assert fn(key, _CHAIN, starts, 5, dangling="restart").tolist() == [[0, 1, 2, 0, 1, 2]]
    traced = jax.jit(lambda g: fn(key, g, starts, 4))(_CHAIN)
    assert traced.tolist() == [[0, 1, 2, -1, -1]]


def test_graph_without_edges_and_all_zero_weights():
    g = graphs.CSRGraph(jnp.zeros(3, jnp.int32), jnp.zeros(0, jnp.int32))
    assert walks.uniform(jax.random.key(0), g, jnp.array([1]), 2, dangling="stay").tolist() == [
        [1, 1, 1]
    ]
    zero = graphs.from_edges([0, 1], [1, 0], weights=[0.0, 1.0])
    with pytest.raises(ValueError, match="positive weight"):
        walks.weighted(jax.random.key(0), zero, jnp.array([1]), 2)
    assert walks.weighted(jax.random.key(0), zero, jnp.array([1]), 2, dangling="stay").tolist() == [
        [1, 0, 0]
    ]


def test_out_of_range_start_raises_and_is_marked_under_jit():
    g = _small()
    with pytest.raises(ValueError, match="starts must lie in"):
        walks.uniform(jax.random.key(0), g, jnp.array([0, 8]), 3)
    out = jax.jit(lambda s: walks.node2vec(jax.random.key(0), g, s, 3))(jnp.array([0, 8, -1]))
    assert out[1:].tolist() == [[-1] * 4, [-1] * 4] and out[0, 0] == 0


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda g, k: walks.uniform(k, g, jnp.zeros((2, 2), int), 3), "starts must be a 1-D"),
        (lambda g, k: walks.uniform(k, g, jnp.zeros(2), 3), "starts must be a 1-D integer"),
        (lambda g, k: walks.uniform(k, g, jnp.zeros(2, int), 3.0), "length must be a Python int"),
        (lambda g, k: walks.uniform(k, g, jnp.zeros(2, int), -1), "length must be >= 0"),
        (lambda g, k: walks.uniform(k, g, jnp.zeros(2, int), 3, dangling="skip"), "dangling"),
        (lambda g, k: walks.uniform(k, g, jnp.zeros(2, int), 3, restart_prob=1.5), "restart_prob"),
        (lambda g, k: walks.uniform(0, g, jnp.zeros(2, int), 3), "key"),
        (lambda g, k: walks.uniform(k, (g.indptr, g.indices), jnp.zeros(2, int), 3), "CSRGraph"),
        (lambda g, k: walks.node2vec(k, g, jnp.zeros(2, int), 3, p=0.0), "p must be positive"),
        (lambda g, k: walks.node2vec(k, g, jnp.zeros(2, int), 3, q=-1.0), "q must be positive"),
        (lambda g, k: walks.node2vec(k, g, jnp.zeros(2, int), 3, method="alias"), "method"),
        (lambda g, k: walks.weighted(k, g, jnp.zeros(2, int), 3, cdf=jnp.ones(3)), "cdf"),
        (lambda g, k: walks.metropolis_hastings(k, g, jnp.zeros(2, int), 3,
                                                log_target=jnp.zeros(3)), "log_target"),
        (lambda g, k: walks.metropolis_hastings(k, g, jnp.zeros(2, int), 3,
                                                log_target=jnp.full(NUM, jnp.nan)), "NaN"),
        (lambda g, k: walks.cooccurrence(jnp.zeros(3, int), 2), "walks must be"),
        (lambda g, k: walks.cooccurrence(jnp.zeros((3, 3), int), 0), "window"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call(_small(), jax.random.key(0))


def test_bad_graphs():
    key, starts = jax.random.key(0), jnp.zeros(1, int)
    with pytest.raises(ValueError, match="at least one node"):
        walks.uniform(key, graphs.CSRGraph(jnp.zeros(1, jnp.int32), jnp.zeros(0, jnp.int32)),
                      starts, 2)
    negative = graphs.CSRGraph(*_small(True)[:2], -_small(True).weights)
    for fn in (walks.weighted, functools.partial(walks.node2vec, method="exact"), walks.node2vec):
        with pytest.raises(ValueError, match="non-negative"):
            fn(key, negative, starts, 2)


# --------------------------------------------------------------------------- #
# Co-occurrence counts.
# --------------------------------------------------------------------------- #


def _brute_cooccurrence(w, window, symmetric, n):
    C = np.zeros((n, n), int)
    for row in np.asarray(w):
        for t in range(len(row)):
            for k in range(1, window + 1):
                if t + k < len(row) and row[t] >= 0 and row[t + k] >= 0:
                    C[row[t], row[t + k]] += 1
                    if symmetric:
                        C[row[t + k], row[t]] += 1
    return C


@pytest.mark.parametrize("symmetric", [True, False])
def test_cooccurrence_matches_brute_force(symmetric):
    w = walks.uniform(jax.random.key(11), _small(), jnp.arange(NUM), 7)
    w = w.at[2, 5:].set(-1)  # a marked tail is skipped
    expected = _brute_cooccurrence(w, 3, symmetric, NUM)
    sparse = walks.cooccurrence(w, 3, symmetric=symmetric)
    nnz = int(sparse.nnz)
    assert nnz == np.count_nonzero(expected)
    np.testing.assert_array_equal(sparse.to_scipy(NUM).toarray(), expected)
    keys = np.asarray(sparse.rows[:nnz]) * NUM + np.asarray(sparse.cols[:nnz])
    assert np.all(np.diff(keys) > 0)
    assert np.all(np.asarray(sparse.rows[nnz:]) == -1) and not np.any(sparse.counts[nnz:])
    np.testing.assert_array_equal(walks.cooccurrence_matrix(w, 3, NUM, symmetric=symmetric),
                                  expected)


def test_cooccurrence_window_longer_than_walks():
    w = jnp.array([[0, 1], [1, 2]])
    np.testing.assert_array_equal(walks.cooccurrence_matrix(w, 5, 3),
                                  _brute_cooccurrence(w, 5, True, 3))


# --------------------------------------------------------------------------- #
# jit, vmap, no retrace, sharding: every sampler in one program.
# --------------------------------------------------------------------------- #

W = 16


def _all(key, g, starts):
    keys = jax.random.split(key, 6)
    return {
        "uniform": walks.uniform(keys[0], g, starts, 5, restart_prob=0.2),
        "weighted": walks.weighted(keys[1], g, starts, 5),
        "metropolis_hastings": walks.metropolis_hastings(
            keys[2], g, starts, 5, log_target=jnp.linspace(0.0, 1.0, NUM)),
        "non_backtracking": walks.non_backtracking(keys[3], g, starts, 5),
        "node2vec": walks.node2vec(keys[4], g, starts, 5, p=0.5, q=2.0),
        "node2vec_exact": walks.node2vec(keys[5], g, starts, 5, p=0.5, q=2.0, method="exact"),
    }


_jitted_all = jax.jit(chex.assert_max_traces(_all, n=1))


def _starts(seed=0):
    return jax.random.randint(jax.random.key(seed), (W,), 0, NUM)


@functools.lru_cache(maxsize=None)
def _reference(seed=0):
    return jax.tree.map(np.asarray, _jitted_all(jax.random.key(seed), _small(True), _starts(seed)))


def _assert_trees_equal(actual, expected):
    for name in expected:
        np.testing.assert_array_equal(np.asarray(actual[name]), expected[name], err_msg=name)


def test_jit_equals_eager_and_no_retrace():
    expected = _reference()
    _assert_trees_equal(_all(jax.random.key(0), _small(True), _starts()), expected)
    second = _jitted_all(jax.random.key(1), _small(True), _starts(1))  # new values, no retrace
    _assert_trees_equal(second, _reference(1))
    for name, w in expected.items():
        assert w.shape == (W, 6) and w.dtype == np.int32, name
        if name != "uniform":  # restarts are not edges
            assert bool(walks.follows_edges(_small(True), w)), name


def test_vmap_over_keys_equals_a_loop():
    keys = jax.random.split(jax.random.key(3), 3)
    batched = jax.vmap(lambda k: _all(k, _small(True), _starts()))(keys)
    single = _all(keys[1], _small(True), _starts())  # eager: reuses the kernels' own jits
    _assert_trees_equal(jax.tree.map(lambda x: x[1], batched), jax.tree.map(np.asarray, single))


@pytest.mark.multidevice
def test_sharded_explicit_mesh_equals_unsharded():
    expected = _reference()
    mesh = sharding.batch_mesh()
    with jax.set_mesh(mesh):
        starts = sharding.shard_batch(_starts(), mesh)
        out = jax.jit(_all)(jax.random.key(0), _small(True), starts)
        for name, w in out.items():
            assert jax.typeof(w).sharding.spec[0] == sharding.BATCH_AXIS, name
    _assert_trees_equal(out, expected)


@pytest.mark.multidevice
def test_sharded_auto_mesh_equals_unsharded():
    expected = _reference()
    mesh = sharding.batch_mesh(axis_type=AxisType.Auto)
    batch = NamedSharding(mesh, P(sharding.BATCH_AXIS))
    g = _small(True)
    fn = jax.jit(lambda s: _all(jax.random.key(0), g, s), in_shardings=batch,
                 out_shardings=NamedSharding(mesh, P(sharding.BATCH_AXIS, None)))
    out = fn(jax.device_put(_starts(), batch))
    for w in out.values():
        assert w.sharding.spec[0] == sharding.BATCH_AXIS and len(w.sharding.device_set) == 8
    _assert_trees_equal(out, expected)
