"""Tests for jaxsampling.kernels.leverage.sampling (row samples and coresets).

Inclusion probabilities against a numpy water-filling; the Bernoulli sample's
per-row inclusion counts over 20,000 fixed keys against Binomial(R, pi_i) and
the with-replacement counts against Binomial(R m, q_i) (5 sigma, exact where
pi is 0 or 1); unbiasedness of ``||S A x||_p^p`` for both forms and
p = 1, 2, 3 (5 standard errors); the fixed-size layout (sorted indices,
padding, overflow); the probabilities of every method.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsampling import testing
from jaxsampling.kernels import leverage
from tests.kernels.leverage import common, reference

N, M = 64, 16
NUM_KEYS = 20_000
_inclusion = jax.jit(leverage.inclusion_probabilities, static_argnames="m")


@functools.lru_cache(maxsize=None)
def _weights64():
    """float32[64] heavy-tailed importance weights: 3 saturate at m = 16, one is 0."""
    q = np.abs(np.random.default_rng(0).standard_cauchy(N)).astype(np.float32)
    q[5] = 0.0
    return q


# ----------------------------------------------------------------------------
# Inclusion probabilities.
# ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "q, m, expected",
    [
        ([0.7, 0.1, 0.1, 0.1], 2, [1.0, 1 / 3, 1 / 3, 1 / 3]),
        ([0.5, 0.3, 0.1, 0.05, 0.05], 3, [1.0, 1.0, 0.5, 0.25, 0.25]),
        ([2.0, 0.0, 1.0, 1.0], 2, [1.0, 0.0, 0.5, 0.5]),  # unnormalised, a zero
        ([1.0, 1.0, 1.0, 1.0], 4, [1.0, 1.0, 1.0, 1.0]),
    ],
)
def test_inclusion_exact_small_cases(q, m, expected):
    pi = _inclusion(jnp.asarray(q, jnp.float32), m=m)
    np.testing.assert_allclose(pi, expected, rtol=1e-6, atol=1e-7)
    ref = reference.inclusion_probabilities(q, m)
    np.testing.assert_allclose(ref, expected, rtol=1e-12)


def test_inclusion_water_filling():
    q = _weights64()
    pi = np.asarray(_inclusion(q, m=M), np.float64)
    expected = reference.inclusion_probabilities(q, M)
    np.testing.assert_allclose(pi, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(pi.sum(), M, rtol=1e-5)
    assert np.all(pi <= 1.0) and pi[5] == 0.0
    saturated = expected == 1.0
    assert 1 <= saturated.sum() < M  # the case exercises the cap
    assert np.all(pi[saturated] == 1.0)
    # Proportional below the cap: pi_i / q_i is one constant.
    below = ~saturated & (q > 0)
    ratio = pi[below] / q[below]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-5)


# ----------------------------------------------------------------------------
# The laws of the two samples.
# ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _bernoulli_draws(p=1.5):
    keys = jax.random.split(jax.random.key(1), NUM_KEYS)
    draw = jax.jit(
        jax.vmap(lambda k, q: leverage.sample_rows(k, q, M, p), in_axes=(0, None))
    )
    return jax.tree.map(np.asarray, draw(keys, jnp.asarray(_weights64())))


def _row_counts(indices, mask, n=N):
    counts = np.zeros(n, np.int64)
    np.add.at(counts, indices[mask], 1)
    return counts


def test_bernoulli_inclusion_frequencies():
    s = _bernoulli_draws()
    pi = reference.inclusion_probabilities(_weights64(), M)
    # Exact for pi in {0, 1} (always / never kept), 5 sigma elsewhere.
    testing.assert_binomial_count(_row_counts(s.indices, s.mask), NUM_KEYS, pi)
    testing.assert_mean_close(s.count, float(M))


def test_bernoulli_layout_and_weights():
    s = _bernoulli_draws()
    p = 1.5
    capacity = leverage.default_capacity(M)
    assert s.indices.shape == (NUM_KEYS, capacity) and capacity == M + 24 + 8
    assert not s.overflow.any() and np.all(s.count <= capacity)
    slots = np.arange(capacity)[None, :]
    np.testing.assert_array_equal(s.mask, slots < s.count[:, None])
    # Kept rows in increasing order; padding is index 0, weight 0.
    gaps = np.diff(s.indices, axis=1)
    assert np.all(gaps[s.mask[:, 1:]] > 0)
    assert np.all(s.indices[~s.mask] == 0) and np.all(s.weights[~s.mask] == 0.0)
    pi = reference.inclusion_probabilities(_weights64(), M)
    np.testing.assert_allclose(
        s.weights[s.mask], pi[s.indices[s.mask]] ** (-1.0 / p), rtol=1e-5
    )


def test_with_replacement_frequencies():
    num_keys, p = 4000, 3.0
    keys = jax.random.split(jax.random.key(2), num_keys)
    def one(key, q):
        return leverage.sample_rows(key, q, M, p, replacement=True)

    draw = jax.jit(jax.vmap(one, in_axes=(0, None)))
    s = jax.tree.map(np.asarray, draw(keys, jnp.asarray(_weights64())))
    q = _weights64().astype(np.float64) / _weights64().sum(dtype=np.float64)
    assert s.indices.shape == (num_keys, M) and np.all(s.mask) and np.all(s.count == M)
    assert not s.overflow.any()
    testing.assert_binomial_count(_row_counts(s.indices, s.mask), num_keys * M, q)
    np.testing.assert_allclose(s.weights, (M * q[s.indices]) ** (-1.0 / p), rtol=1e-5)


@pytest.mark.parametrize("replacement", [False, True])
def test_unbiased_norms(replacement):
    # E ||S A x||_p^p = ||A x||_p^p for every x, p: checked at 4 directions
    # and p = 1, 2, 3 from one draw per key (estimates of one key correlate,
    # each mean is tested on its own at 5 standard errors).
    A = jnp.asarray(common.small_matrix(), jnp.float32)
    tau = reference.svd_leverage(common.small_matrix())
    q = jnp.asarray(tau / tau.sum(), jnp.float32)  # 0 only on the zero row
    X = jnp.asarray(np.random.default_rng(3).standard_normal((3, 4)), jnp.float32)
    ps = (1.0, 2.0, 3.0)
    m = 8

    def estimates(key):
        out = []
        for p in ps:
            s = leverage.sample_rows(key, q, m, p, replacement=replacement)
            rows = s.weights[:, None] * A[s.indices]
            out.append(jnp.sum(jnp.abs(rows @ X) ** p, axis=0))
        return jnp.stack(out)

    keys = jax.random.split(jax.random.key(4), 4000)
    est = np.asarray(jax.jit(jax.vmap(estimates))(keys), np.float64)
    A64, X64 = np.asarray(A, np.float64), np.asarray(X, np.float64)
    truth = np.stack([np.sum(np.abs(A64 @ X64) ** p, axis=0) for p in ps])
    testing.assert_mean_close(est, truth)
    # The test has power: the estimator is far from constant.
    assert np.all(est.std(axis=0) > 0.01 * truth)


def test_overflow_flag():
    q = jnp.ones(N, jnp.float32)
    draw = jax.jit(lambda k: leverage.sample_rows(k, q, 32, 1.0, capacity=8))
    s = draw(jax.random.key(5))
    assert bool(s.overflow) and int(s.count) > 8
    assert np.all(s.mask) and np.all(np.diff(np.asarray(s.indices)) > 0)
    np.testing.assert_allclose(s.weights, 2.0, rtol=1e-6)  # pi = 1/2, p = 1


def test_default_capacity():
    assert leverage.default_capacity(200) == 200 + 85 + 8
    assert leverage.default_capacity(16) == 16 + 24 + 8


# ----------------------------------------------------------------------------
# Probabilities and coresets.
# ----------------------------------------------------------------------------


def test_sampling_probabilities_every_method(x64):
    A = common.small_matrix()
    p = 1.5

    @jax.jit
    def every(A):
        methods = leverage.SAMPLING_METHODS
        return {m: leverage.sampling_probabilities(A, p, m) for m in methods}

    qs = jax.tree.map(np.asarray, every(A))
    tau = reference.svd_leverage(A)
    w, _ = common.lewis_weights(A, p=p, method="auto")
    w = np.asarray(w)
    bound = np.asarray(common.upper_bounds(A, p=p, lewis_weights=w))
    expected = {
        "uniform": np.ones(A.shape[0]),
        "leverage": tau,
        "root_leverage": np.sqrt(tau),
        "lewis": w,
        "sensitivity": bound,
        "lewis_plus_leverage": w / w.sum() + tau / tau.sum(),
    }
    assert set(qs) == set(expected)
    for name, q in qs.items():
        assert np.all(q >= 0), name
        np.testing.assert_allclose(q.sum(), 1.0, rtol=1e-12, err_msg=name)
        target = expected[name] / expected[name].sum()
        np.testing.assert_allclose(q, target, rtol=1e-5, atol=1e-12, err_msg=name)
