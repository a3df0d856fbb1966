"""Bad input: ValueError with a message naming the argument and the problem.

Shapes and dtypes fail at trace time (also under ``jax.eval_shape``); values
(orthonormality, symmetry, positive semi-definiteness, ``K <= I``, rank,
finiteness) fail when the inputs are concrete; static sizes must be Python
ints. (Overflow under jit, the documented flag, is in test_ensemble.)
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsampling.kernels import dpp
from tests.kernels.dpp import common

KEY = jax.random.key(0)


def _basis():
    return np.asarray(common.basis(6, 3), np.float32)


def _with(M, i, j, value):
    M = np.array(M, np.float32)
    M[i, j] = value
    return M


# ----------------------------------------------------------------------------
# V of a projection DPP.
# ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "V, match",
    [
        (2.0 * _basis(), r"V must have orthonormal columns: max \|V\^T V - I\| = 3"),
        (_with(_basis(), 1, 2, np.nan), "V has non-finite entries"),
        (_with(_basis(), 0, 0, np.inf), "V has non-finite entries"),
        (np.ones(6, np.float32), r"V must have shape \(N, k\), got shape \(6,\)"),
        (np.ones((2, 6, 3), np.float32), r"V must have shape \(N, k\), got shape \(2, 6, 3\)"),
        (np.eye(6, 3, dtype=np.int32), "V must have a floating dtype, got int32"),
        (_basis().T, r"V must have at least as many rows as columns, got \(3, 6\)"),
        (np.ones((0, 3), np.float32), "V must be non-empty"),
    ],
)
def test_bad_basis(V, match):
    with pytest.raises(ValueError, match=match):
        dpp.sample_projection(KEY, V)


def test_shape_errors_at_trace_time():
    with pytest.raises(ValueError, match=r"V must have shape \(N, k\)"):
        jax.eval_shape(lambda V: dpp.sample_projection(KEY, V), np.ones(6, np.float32))
    with pytest.raises(ValueError, match="V must have a floating dtype"):
        jax.eval_shape(lambda V: dpp.sample_projection(KEY, V), np.eye(6, 3, dtype=np.int32))
    with pytest.raises(ValueError, match="L must be square"):
        jax.eval_shape(dpp.spectrum_from_likelihood, np.ones((5, 4), np.float32))
    with pytest.raises(ValueError, match=r"X must be tall \(N >= d\)"):
        jax.eval_shape(lambda X: dpp.volume_sample(KEY, X, 3), np.ones((2, 3), np.float32))


# ----------------------------------------------------------------------------
# L and K.
# ----------------------------------------------------------------------------


def _likelihood():
    return np.asarray(common.likelihood5(), np.float32)


def _correlation():
    return np.asarray(common.correlation5(), np.float32)


@pytest.mark.parametrize(
    "call, M, match",
    [
        (dpp.spectrum_from_likelihood, _with(_likelihood(), 0, 1, 5.0), "L must be symmetric"),
        (
            dpp.spectrum_from_likelihood,
            _likelihood() - 2.0 * np.eye(5, dtype=np.float32),
            "the likelihood kernel is not positive semi-definite: smallest eigenvalue -2",
        ),
        (dpp.spectrum_from_likelihood, _with(_likelihood(), 2, 2, np.nan), "L has non-finite"),
        (dpp.spectrum_from_likelihood, np.ones((5, 4), np.float32), r"L must be square"),
        (dpp.spectrum_from_likelihood, np.ones(5, np.float32), r"L must have shape \(N, N\)"),
        (dpp.spectrum_from_likelihood, np.eye(5, dtype=np.int32), "L must have a floating"),
        (dpp.spectrum_from_likelihood, np.zeros((5, 5), np.float32), "the kernel is zero"),
        (dpp.spectrum_from_correlation, _with(_correlation(), 3, 0, 0.9), "K must be symmetric"),
        (
            dpp.spectrum_from_correlation,
            1.5 * _correlation(),
            "a correlation kernel needs eigenvalues <= 1, got 1.5",
        ),
        (
            dpp.spectrum_from_correlation,
            _correlation() - 0.1 * np.eye(5, dtype=np.float32),
            "the correlation kernel is not positive semi-definite",
        ),
        (dpp.spectrum_from_correlation, _with(_correlation(), 1, 1, np.inf), "K has non-finite"),
    ],
)
def test_bad_kernel(call, M, match):
    with pytest.raises(ValueError, match=match):
        call(M)


def test_bad_eigendecomposition():
    V = common.basis(5, 3)
    with pytest.raises(ValueError, match=r"eigenvalues must have shape \(3,\)"):
        dpp.spectrum_from_eigh(np.ones(4), V)
    with pytest.raises(ValueError, match="kernel must be 'likelihood' or 'correlation'"):
        dpp.spectrum_from_eigh(np.ones(3), V, kernel="L")
    with pytest.raises(ValueError, match="eigenvalues <= 1"):
        dpp.spectrum_from_eigh(np.array([0.5, 1.2, 0.1]), V, kernel="correlation")


# ----------------------------------------------------------------------------
# Samplers' other arguments.
# ----------------------------------------------------------------------------


def test_spectrum_must_be_a_spectrum():
    with pytest.raises(ValueError, match="spectrum must be a dpp.Spectrum"):
        dpp.sample(KEY, _likelihood())
    with pytest.raises(ValueError, match=r"spectrum must be a dpp.Spectrum .*, got tuple"):
        dpp.sample_k(KEY, tuple(common.spectrum("likelihood5")), 2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(max_size=2.5), "max_size must be a Python int"),
        (dict(max_size=np.float32(2)), "max_size must be a Python int"),
        (dict(max_size=0), "max_size must be >= 1, got 0"),
        (dict(num_draws=2.0), "num_draws must be a Python int"),
        (dict(num_draws="3"), "num_draws must be a Python int"),
        (dict(num_draws=0), "num_draws must be >= 1, got 0"),
        (dict(method="qr"), "method must be one of"),
    ],
)
def test_bad_static_arguments_of_sample(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dpp.sample(KEY, common.spectrum("likelihood5"), **kwargs)


@pytest.mark.parametrize(
    "k, match",
    [
        (5, "k = 5 exceeds the rank 4 of the kernel"),
        (0, "k must be >= 1, got 0"),
        (2.0, "k must be a Python int"),
    ],
)
def test_bad_k_of_sample_k(k, match):
    with pytest.raises(ValueError, match=match):
        dpp.sample_k(KEY, common.spectrum("likelihood5"), k)


def test_sample_k_needs_finite_eigenvalues():
    # A correlation kernel with eigenvalue 1 has log lambda = +inf.
    spectrum = dpp.spectrum_from_eigh(
        np.array([1.0, 0.5], np.float32), common.basis(5, 2), kernel="correlation"
    )
    with pytest.raises(ValueError, match="a k-DPP needs finite L eigenvalues"):
        dpp.sample_k(KEY, spectrum, 1)


def test_bad_num_draws_of_every_sampler():
    calls = [
        lambda n: dpp.sample_projection(KEY, _basis(), num_draws=n),
        lambda n: dpp.sample_k(KEY, common.spectrum("likelihood5"), 2, num_draws=n),
        lambda n: dpp.volume_sample(KEY, common.design6(), 3, num_draws=n),
        lambda n: dpp.volume_rescaled_sample(KEY, common.design6(), 3, num_draws=n),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="num_draws must be a Python int"):
            call(4.0)
        with pytest.raises(ValueError, match="num_draws must be >= 1"):
            call(-1)


def test_max_size_for_needs_a_concrete_spectrum_and_a_tail():
    spectrum = common.spectrum("likelihood5")
    with pytest.raises(ValueError, match="max_size_for needs a concrete spectrum"):
        jax.jit(lambda s: jnp.zeros(dpp.max_size_for(s)))(spectrum)
    for tail in (0.0, 1.0, -0.5, 2.0):
        with pytest.raises(ValueError, match=r"tail must be in \(0, 1\)"):
            dpp.max_size_for(spectrum, tail=tail)


# ----------------------------------------------------------------------------
# Volume sampling.
# ----------------------------------------------------------------------------


def _rank_deficient():
    X = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    X[:, 2] = X[:, 0] - 2.0 * X[:, 1]
    return X


@pytest.mark.parametrize(
    "call", [dpp.volume_sample, dpp.volume_rescaled_sample], ids=["volume", "rescaled"]
)
def test_bad_design(call):
    X = np.asarray(common.design6(), np.float32)
    with pytest.raises(ValueError, match=r"k must be >= d = 2 \(the number of columns\), got 1"):
        call(KEY, X, 1)
    with pytest.raises(ValueError, match="X is rank-deficient: numerical rank 2 < 3 columns"):
        call(KEY, _rank_deficient(), 4)
    with pytest.raises(ValueError, match="X is rank-deficient: column 1 is zero"):
        call(KEY, _with(np.zeros((6, 2)), 0, 0, 1.0), 3)
    with pytest.raises(ValueError, match=r"X must be tall \(N >= d\), got shape \(2, 6\)"):
        call(KEY, X.T, 6)
    with pytest.raises(ValueError, match="X has non-finite entries"):
        call(KEY, _with(X, 3, 1, np.nan), 3)
    with pytest.raises(ValueError, match="X must have a floating dtype"):
        call(KEY, np.ones((6, 2), np.int32), 3)
    with pytest.raises(ValueError, match="k must be a Python int"):
        call(KEY, X, 3.0)


def test_volume_sample_needs_k_at_most_n():
    with pytest.raises(ValueError, match="k must be <= N = 6 for a set of distinct rows, got 7"):
        dpp.volume_sample(KEY, common.design6(), 7)
    # Volume-rescaled tuples may repeat rows: k > N is fine (checked by tracing only).
    out = jax.eval_shape(lambda k: dpp.volume_rescaled_sample(k, common.design6(), 8), KEY)
    assert out.shape == (8,)


# ----------------------------------------------------------------------------
# Keys.
# ----------------------------------------------------------------------------

SAMPLER_CALLS = {
    "projection": lambda key, **kw: dpp.sample_projection(key, _basis(), **kw),
    "sample": lambda key, **kw: dpp.sample(key, common.spectrum("likelihood5"), **kw),
    "sample_k": lambda key, **kw: dpp.sample_k(key, common.spectrum("likelihood5"), 2, **kw),
    "volume": lambda key, **kw: dpp.volume_sample(key, common.design6(), 3, **kw),
    "volume_rescaled": lambda key, **kw: dpp.volume_rescaled_sample(
        key, common.design6(), 3, **kw
    ),
}

BAD_KEYS = [
    (0, "key must be a typed key"),
    (np.zeros(2, np.int32), "key must be a typed key"),
    (np.zeros(3, np.uint32), "key must be a typed key"),
    (jax.random.split(KEY, (2, 2)), "key must be a single typed key, got shape"),
    (jax.random.split(KEY, 0), "the batch of keys is empty"),
    (np.zeros((0, 2), np.uint32), "the batch of keys is empty"),
    (np.zeros((4, 3), np.uint32), r"a batch of legacy keys must be uint32\[B, 2\], got \(4, 3\)"),
]


@pytest.mark.parametrize("key, match", BAD_KEYS)
@pytest.mark.parametrize("name", sorted(SAMPLER_CALLS))
def test_bad_key(name, key, match):
    with pytest.raises(ValueError, match=match):
        SAMPLER_CALLS[name](key)


@pytest.mark.parametrize("name", sorted(SAMPLER_CALLS))
def test_batch_of_keys_and_num_draws(name):
    keys = jax.random.split(KEY, 4)
    with pytest.raises(ValueError, match="pass either a batch of keys or num_draws, not both"):
        SAMPLER_CALLS[name](keys, num_draws=4)


# ----------------------------------------------------------------------------
# Log-probabilities.
# ----------------------------------------------------------------------------


def test_bad_indices():
    L, V = _likelihood(), _basis()
    with pytest.raises(ValueError, match=r"indices has entries outside \[0, 5\) other than"):
        dpp.likelihood_log_prob(L, np.array([0, 5]))
    with pytest.raises(ValueError, match=r"indices has entries outside \[0, 5\)"):
        dpp.correlation_log_prob(_correlation(), np.array([-2, 1]))
    with pytest.raises(ValueError, match="indices must be a 1-D integer array"):
        dpp.likelihood_log_prob(L, np.array([[0, 1]]))
    with pytest.raises(ValueError, match="indices must be a 1-D integer array"):
        dpp.k_log_prob(L, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="indices must have length k = 3, got 2"):
        dpp.projection_log_prob(V, np.array([0, 1]))
    with pytest.raises(ValueError, match="indices must have length k >= d = 2, got 1"):
        dpp.volume_log_prob(common.design6(), np.array([0]))
    with pytest.raises(ValueError, match="indices must have length k >= d = 2, got 1"):
        dpp.volume_rescaled_log_prob(common.design6(), np.array([0]))
    with pytest.raises(ValueError, match=r"L must have shape \(N, N\)"):
        dpp.likelihood_log_prob(np.ones(5, np.float32), np.array([0]))


def test_nan_kernel_under_jit_gives_flagged_empty_draws():
    # Eager calls raise; under jit the draws are all padding, never a plausible set.
    L = jnp.eye(4).at[0, 1].set(jnp.nan).at[1, 0].set(jnp.nan)
    draw = jax.jit(
        lambda L: dpp.sample(
            jax.random.key(0), dpp.spectrum_from_likelihood(L), num_draws=3, max_size=3
        )
    )(L)
    np.testing.assert_array_equal(np.asarray(draw.indices), -1)
    np.testing.assert_array_equal(np.asarray(draw.size), -1)
    assert not bool(draw.overflow.any())
    V = jnp.full((5, 2), jnp.nan)
    items = jax.jit(lambda V: dpp.sample_projection(jax.random.key(0), V, num_draws=2))(V)
    np.testing.assert_array_equal(np.asarray(items), -1)


def test_volume_rescaled_log_prob_of_too_few_distinct_rows_is_minus_inf():
    X = jnp.asarray(common.design6())
    assert float(dpp.volume_rescaled_log_prob(X, jnp.array([2, 2]))) == -np.inf
    assert np.isfinite(float(dpp.volume_rescaled_log_prob(X, jnp.array([2, 3]))))
