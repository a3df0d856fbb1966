"""jit, vmap, retracing and sharding of the leverage kernels.

jit equals eager (and a second call with new values does not retrace); the
jitted coreset is assembled from its sample; vmap over keys equals a loop
over keys, vmap over matrices (one per leverage branch) a loop over
matrices; rows sharded over the 8 simulated devices, on an Explicit mesh
(under ``jax.set_mesh``) and on an Auto mesh (``in_shardings`` /
``out_shardings``), give the unsharded results and stay sharded.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxsampling import sharding
from jaxsampling.kernels import leverage
from tests.kernels.leverage import common, reference


@functools.lru_cache(maxsize=None)
def _inputs():
    """float32 (A[40, 3], b[40], q[40]); 40 rows = 5 per device."""
    A = jnp.asarray(common.small_matrix(), jnp.float32)
    b = jnp.asarray(np.random.default_rng(1).standard_normal(A.shape[0]), jnp.float32)
    q = jnp.asarray(np.random.default_rng(2).uniform(0.1, 1.0, A.shape[0]), jnp.float32)
    return A, b, q


def _leverage(key, A, b, q):
    del key, b, q
    return leverage.leverage_scores(A)


def _lewis(key, A, b, q):
    del key, b, q
    w, info = leverage.lewis_weights(A, 1.0)
    return w, info.residual, info.converged  # iteration counts may differ by rounding


def _bernoulli(key, A, b, q):
    del A, b
    return leverage.sample_rows(key, q, 8, 1.5)


def _with_replacement(key, A, b, q):
    del A, b
    return leverage.sample_rows(key, q, 8, 1.5, replacement=True)


def _coreset(key, A, b, q):
    del q
    return leverage.coreset(key, A, b, m=8, p=1.0, method="leverage")


def _regression(key, A, b, q):
    del key
    x, info = leverage.lp_regression(A, b, 1.0, weights=q)
    return x, info.objective


def _sketch(key, A, b, q):
    del b, q
    return leverage.approximate_leverage_scores(key, A, sketch="countsketch", eps=1.0)


KERNELS = {
    "leverage": _leverage,
    "lewis": _lewis,
    "bernoulli": _bernoulli,
    "with_replacement": _with_replacement,
    "coreset": _coreset,
}
# Compiled on their own, in the slow run (their programs are the largest).
SLOW_KERNELS = {"regression": _regression, "sketch": _sketch}
SAMPLERS = ("bernoulli", "with_replacement", "coreset")


def _all(key, A, b, q):
    """Every kernel at once: compiling one program is cheaper than five."""
    return {name: fn(key, A, b, q) for name, fn in KERNELS.items()}


def _assert_trees_close(actual, expected, rtol=1e-5):
    chex.assert_trees_all_equal_structs(actual, expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        a, e = np.asarray(a), np.asarray(e)
        if np.issubdtype(a.dtype, np.floating):
            np.testing.assert_allclose(a, e, rtol=rtol, atol=1e-6)
        else:
            np.testing.assert_array_equal(a, e)


# Traced once for the whole module: the no-retrace test calls it with new values.
_jitted_all = jax.jit(chex.assert_max_traces(_all, n=1))


def _stack(trees):
    return jax.tree.map(lambda *x: jnp.stack(x), *trees)


def test_no_retrace_on_new_values():
    A, b, q = _inputs()
    for i, scale in enumerate([1.0, 2.0, 0.5]):
        key = jax.random.key(i)
        jax.block_until_ready(_jitted_all(key, A * scale, b - i, q * scale))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW_KERNELS))
def test_slow_kernels_no_retrace_and_jit_equals_eager(name):
    A, b, q = _inputs()
    fn = jax.jit(chex.assert_max_traces(SLOW_KERNELS[name], n=1))
    for i, scale in enumerate([1.0, 2.0]):
        args = (jax.random.key(i), A * scale, b - i, q * scale)
        _assert_trees_close(fn(*args), SLOW_KERNELS[name](*args))


# Eager runs compile op by op (a second compile per kernel); the default run
# covers the kernels with the most host-side logic.
EAGER = [
    "leverage",
    "lewis",
    pytest.param("bernoulli", marks=pytest.mark.slow),
    pytest.param("coreset", marks=pytest.mark.slow),
    pytest.param("with_replacement", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("name", EAGER)
def test_jit_equals_eager(name):
    A, b, q = _inputs()
    key = jax.random.key(1)
    args = (key, A * 2.0, b - 1.0, q * 2.0)
    _assert_trees_close(_jitted_all(*args)[name], KERNELS[name](*args))


def test_legacy_keys_equal_typed_keys():
    A, b, q = _inputs()
    legacy = jax.random.PRNGKey(3)
    typed = jax.random.wrap_key_data(legacy)
    expected = _jitted_all(typed, A, b, q)
    _assert_trees_close(jax.jit(_bernoulli)(legacy, A, b, q), expected["bernoulli"])


def test_coreset_assembly():
    A, b, q = _inputs()
    cs = _jitted_all(jax.random.key(7), A, b, q)["coreset"]
    s = cs.sample
    np.testing.assert_allclose(cs.rows, s.weights[:, None] * A[s.indices], rtol=1e-6)
    np.testing.assert_allclose(cs.targets, s.weights * b[s.indices], rtol=1e-6)
    assert np.all(np.asarray(cs.rows)[~np.asarray(s.mask)] == 0.0)
    # With b the probabilities are the leverage scores of [A, b] (normalised).
    tau = reference.svd_leverage(np.concatenate([A, b[:, None]], axis=1))
    np.testing.assert_allclose(cs.probabilities, tau / tau.sum(), rtol=1e-4, atol=1e-7)
    assert cs.probabilities[common.ZERO_ROW] > 0  # A's row is zero, b's is not


def test_vmap_over_keys_equals_loop():
    A, b, q = _inputs()
    keys = jax.random.split(jax.random.key(4), 3)

    def samplers(key):
        return {name: KERNELS[name](key, A, b, q) for name in SAMPLERS}

    batched = jax.jit(jax.vmap(samplers))(keys)
    looped = _stack([{n: _jitted_all(k, A, b, q)[n] for n in SAMPLERS} for k in keys])
    _assert_trees_close(batched, looped)


@pytest.mark.parametrize(
    "name", ["leverage", pytest.param("lewis", marks=pytest.mark.slow)]
)
def test_vmap_over_matrices_equals_loop(name):
    # Under vmap lax.switch becomes a select and the while-loop runs until
    # every member stops: each member must still get its own answer. The
    # second member takes the refinement branch, the third the SVD branch.
    A, b, q = _inputs()
    mix = jnp.asarray(np.random.default_rng(5).standard_normal((3, 3)), jnp.float32)
    refine = A @ jnp.diag(jnp.array([1.0, 0.1, 1.0])) @ mix
    svd = A @ jnp.diag(jnp.array([1.0, 1e-3, 1e-4])) @ mix
    batch = jnp.stack([A, refine, svd])
    key = jax.random.key(0)

    batched = jax.jit(jax.vmap(lambda A: KERNELS[name](key, A, b, q)))(batch)
    looped = _stack([_jitted_all(key, a, b, q)[name] for a in batch])
    _assert_trees_close(batched, looped, rtol=1e-4)


# ----------------------------------------------------------------------------
# Sharded rows.
# ----------------------------------------------------------------------------


def _row_kernels(A):
    """The row-sharded kernels at once (one compile per mesh)."""
    return {
        "leverage": leverage.leverage_scores(A),
        "leverage_svd": leverage.leverage_scores(A, method="svd"),
        "lewis": leverage.lewis_weights(A, 1.0)[0],
        "probabilities": leverage.sampling_probabilities(A, 1.0, "lewis"),
        "sensitivities": leverage.exact_sensitivities(A, 1.5),
    }


@functools.lru_cache(maxsize=None)
def _unsharded_rows():
    return jax.tree.map(np.asarray, jax.jit(_row_kernels)(_inputs()[0]))


@pytest.mark.multidevice
def test_sharded_explicit_mesh_equals_unsharded():
    A, _, _ = _inputs()
    mesh = sharding.batch_mesh()
    with jax.set_mesh(mesh):
        out = jax.jit(_row_kernels)(sharding.shard_batch(A, mesh))
        for name, value in out.items():
            assert jax.typeof(value).sharding.spec == P(sharding.BATCH_AXIS), name
    _assert_trees_close(out, _unsharded_rows())


@pytest.mark.multidevice
def test_sharded_auto_mesh_equals_unsharded():
    A, _, _ = _inputs()
    mesh = sharding.batch_mesh(axis_type=AxisType.Auto)
    rows = NamedSharding(mesh, P(sharding.BATCH_AXIS))
    matrix = NamedSharding(mesh, P(sharding.BATCH_AXIS, None))
    fn = jax.jit(_row_kernels, in_shardings=matrix, out_shardings=rows)
    out = fn(jax.device_put(A, matrix))
    for name, value in out.items():
        assert value.sharding.spec == P(sharding.BATCH_AXIS), name
    _assert_trees_close(out, _unsharded_rows())


@pytest.mark.multidevice
def test_regression_on_sharded_rows_equals_unsharded():
    # The solver all-gathers the rows (it is meant for coresets); same answer.
    A, b, _ = _inputs()
    solve = jax.jit(lambda A, b: leverage.lp_regression(A, b, 1.0)[0])
    expected = np.asarray(solve(A, b))
    mesh = sharding.batch_mesh()
    with jax.set_mesh(mesh):
        out = solve(*sharding.shard_batch((A, b), mesh))
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.multidevice
def test_sampling_sharded_explicit_mesh_equals_unsharded():
    # Sharded A, b, q: the same draws (threefry is partitionable); the samples
    # come back replicated (their size is the capacity, not n).
    A, b, q = _inputs()
    key = jax.random.key(5)
    expected = {n: _jitted_all(key, A, b, q)[n] for n in SAMPLERS}
    mesh = sharding.batch_mesh()

    def samplers(key, A, b, q):
        return {name: KERNELS[name](key, A, b, q) for name in SAMPLERS}

    with jax.set_mesh(mesh):
        out = jax.jit(samplers)(key, *sharding.shard_batch((A, b, q), mesh))
    _assert_trees_close(out, expected)
