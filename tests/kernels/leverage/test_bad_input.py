"""Bad input: ValueError with a message naming the problem, or the documented
flag / NaN under jit where values cannot be inspected."""

import jax
import numpy as np
import pytest

from jaxsampling.kernels import leverage
from tests.kernels.leverage import common

KEY = jax.random.key(0)


def _good():
    return np.asarray(common.small_matrix(), np.float32)


def _with_nan():
    A = _good().copy()
    A[4, 1] = np.nan
    return A


def _rank_deficient():
    A = _good().copy()
    A[:, 2] = A[:, 0] - 3.0 * A[:, 1]
    return A


ROW_FUNCTIONS = {
    "leverage_scores": lambda A: leverage.leverage_scores(A),
    "root_leverage_scores": lambda A: leverage.root_leverage_scores(A),
    "lewis_weights": lambda A: leverage.lewis_weights(A, 1.0),
    "exact_sensitivities": lambda A: leverage.exact_sensitivities(A, 1.0),
    "sensitivity_upper_bounds": lambda A: leverage.sensitivity_upper_bounds(A, 1.0),
    "sampling_probabilities": lambda A: leverage.sampling_probabilities(
        A, 1.0, "lewis"
    ),
    "coreset": lambda A: leverage.coreset(KEY, A, m=4, p=1.0),
    "approximate_leverage_scores": lambda A: leverage.approximate_leverage_scores(
        KEY, A
    ),
    "lp_regression": lambda A: leverage.lp_regression(
        A, np.ones(A.shape[0], A.dtype), 1.0
    ),
    "subspace_distortion": lambda A: leverage.subspace_distortion(A, A),
}


@pytest.mark.parametrize("name", sorted(ROW_FUNCTIONS))
def test_nan_rows(name):
    match = r"A has non-finite entries in 1 row\(s\), first rows \[4\]"
    with pytest.raises(ValueError, match=match):
        ROW_FUNCTIONS[name](_with_nan())


@pytest.mark.parametrize(
    "name",
    [
        "lewis_weights",
        "exact_sensitivities",
        "sensitivity_upper_bounds",
        "sampling_probabilities",
    ],
)
def test_rank_deficient(name):
    match = r"A is rank-deficient: numerical rank 2 < 3 columns"
    with pytest.raises(ValueError, match=match):
        ROW_FUNCTIONS[name](_rank_deficient())


def test_zero_column_is_rank_deficient():
    A = _good().copy()
    A[:, 1] = 0.0
    with pytest.raises(ValueError, match="rank-deficient: column 1 is zero"):
        leverage.lewis_weights(A, 1.0)


@pytest.mark.parametrize(
    "A, match",
    [
        (np.ones(5, np.float32), r"A must have shape \(n, d\), got shape \(5,\)"),
        (np.ones((2, 5, 3), np.float32), r"A must have shape \(n, d\), got shape \(2,"),
        (np.ones((5, 3), np.int32), "A must have a floating dtype, got int32"),
        (np.ones((2, 3), np.float32), r"A must be tall \(n >= d\), got shape \(2, 3\)"),
        (np.ones((0, 3), np.float32), "A must be non-empty"),
    ],
)
@pytest.mark.parametrize("name", sorted(ROW_FUNCTIONS))
def test_shape_and_dtype(name, A, match):
    if name == "lp_regression" and "tall" in match:
        pytest.skip("lp_regression accepts wide designs")
    with pytest.raises(ValueError, match=match):
        ROW_FUNCTIONS[name](A)


@pytest.mark.parametrize("p", [0.5, 0.0, -1.0, float("inf"), float("nan")])
def test_p_below_one_or_not_finite(p):
    A, q = _good(), np.ones(40, np.float32)
    calls = [
        lambda: leverage.lewis_weights(A, p),
        lambda: leverage.exact_sensitivities(A, p),
        lambda: leverage.sensitivity_upper_bounds(A, p),
        lambda: leverage.sampling_probabilities(A, p, "uniform"),
        lambda: leverage.sample_rows(KEY, q, 4, p),
        lambda: leverage.coreset(KEY, A, m=4, p=p),
        lambda: leverage.lp_regression(A, q, p),
        lambda: leverage.lp_distortion(A, A, p, np.eye(3, dtype=np.float32)),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="p must be a finite number >= 1"):
            call()


def test_p_must_be_static():
    with pytest.raises(ValueError, match="p must be a Python number"):
        jax.jit(lambda p: leverage.lewis_weights(_good(), p))(1.0)


def test_m_larger_than_n_without_replacement():
    q = np.ones(5, np.float32)
    with pytest.raises(ValueError, match="m = 6 exceeds the 5 rows"):
        leverage.sample_rows(KEY, q, 6, 1.0)
    with pytest.raises(ValueError, match="m = 6 exceeds the 5 rows"):
        leverage.inclusion_probabilities(q, 6)
    with pytest.raises(ValueError, match="m = 41 exceeds the 40 rows"):
        leverage.coreset(KEY, _good(), m=41, p=1.0, method="uniform")
    sparse = np.array([1.0, 0.0, 0.0, 1.0, 1.0], np.float32)
    with pytest.raises(ValueError, match="m = 4 exceeds the 3 rows of positive prob"):
        leverage.sample_rows(KEY, sparse, 4, 1.0)
    # With replacement m > n is fine (checked by tracing only).
    s = jax.eval_shape(
        lambda k: leverage.sample_rows(k, q, 6, 1.0, replacement=True), KEY
    )
    assert s.indices.shape == (6,)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(m=2.0), "m must be a Python int"),
        (dict(m=0), "m must be >= 1"),
        (dict(m=2, capacity=0), "capacity must be >= 1"),
        (dict(m=2, capacity=3.5), "capacity must be a Python int"),
    ],
)
def test_sizes_must_be_positive_ints(kwargs, match):
    with pytest.raises(ValueError, match=match):
        leverage.sample_rows(KEY, np.ones(5, np.float32), p=1.0, **kwargs)


@pytest.mark.parametrize(
    "q, match",
    [
        (np.array([1.0, -1.0, 1.0], np.float32), r"probabilities\[1\] = -1.0"),
        (np.array([1.0, np.nan, 1.0], np.float32), r"probabilities\[1\] = nan"),
        (np.zeros(3, np.float32), "probabilities are all zero"),
        (np.ones(3, np.int32), "probabilities must have a floating dtype"),
        (np.ones((3, 1), np.float32), r"probabilities must have shape \(n,\)"),
    ],
)
def test_bad_probabilities(q, match):
    with pytest.raises(ValueError, match=match):
        leverage.sample_rows(KEY, q, 1, 1.0)
    with pytest.raises(ValueError, match=match):
        leverage.inclusion_probabilities(q, 1)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda A: leverage.leverage_scores(A, method="qr"), "method must be one"),
        (lambda A: leverage.root_leverage_scores(A, method="QR"), "method must be one"),
        (lambda A: leverage.lewis_weights(A, 1.0, method="newton"), "method must be"),
        (lambda A: leverage.sampling_probabilities(A, 1.0, "magic"), "method must be"),
        (
            lambda A: leverage.coreset(KEY, A, m=4, p=1.0, method="magic"),
            "method must be one of",
        ),
        (
            lambda A: leverage.approximate_leverage_scores(KEY, A, sketch="magic"),
            "sketch must be one of",
        ),
        (lambda A: leverage.lewis_weights(A, 1.0, tol=0.0), "tol must be positive"),
        (
            lambda A: leverage.lewis_weights(A, 1.0, max_iterations=0),
            "max_iterations must be >= 1",
        ),
        (
            lambda A: leverage.approximate_leverage_scores(KEY, A, eps=0.0),
            "eps must be positive",
        ),
    ],
)
def test_unknown_method_and_bad_options(call, match):
    with pytest.raises(ValueError, match=match):
        call(_good())


@pytest.mark.parametrize(
    "key, match",
    [
        (0, "key must be a typed key"),
        (np.zeros(2, np.int32), "key must be a typed key"),
        (np.zeros(3, np.uint32), "key must be a typed key"),
        (jax.random.split(jax.random.key(0)), "key must be a single typed key"),
    ],
)
def test_bad_key(key, match):
    A, q = _good(), np.ones(40, np.float32)
    with pytest.raises(ValueError, match=match):
        leverage.sample_rows(key, q, 4, 1.0)
    with pytest.raises(ValueError, match=match):
        leverage.coreset(key, A, m=4, p=1.0, method="uniform")
    with pytest.raises(ValueError, match=match):
        leverage.approximate_leverage_scores(key, A)


def test_regression_bad_targets_and_weights():
    A = _good()
    b = np.ones(40, np.float32)
    match = r"b must have shape \(40,\), got shape \(39,\)"
    with pytest.raises(ValueError, match=match):
        leverage.lp_regression(A, b[:39], 1.0)
    with pytest.raises(ValueError, match=r"b must be finite; b\[0\] = nan"):
        leverage.lp_regression(A, np.r_[np.nan, b[1:]].astype(np.float32), 1.0)
    with pytest.raises(ValueError, match="weights must be non-negative"):
        leverage.lp_regression(A, b, 1.0, weights=-b)
    with pytest.raises(ValueError, match=r"weights must have shape \(40,\)"):
        leverage.lp_regression(A, b, 1.0, weights=b[:5])
    with pytest.raises(ValueError, match=r"b must have shape \(40,\)"):
        leverage.coreset(KEY, A, b[:39], m=4, p=1.0)


# ----------------------------------------------------------------------------
# Under jit: the documented NaN / flag instead of an error.
# ----------------------------------------------------------------------------


def test_nan_under_jit_propagates(x64):
    A = _with_nan().astype(np.float64)
    tau = np.asarray(common.leverage_scores(A, method="auto"))
    assert np.isnan(tau[4])  # "non-finite rows give NaN scores"
    w, info = common.lewis_weights(A, p=1.0, method="auto")
    assert not bool(info.converged) and np.isnan(np.asarray(w)[4])


def test_nan_probabilities_under_jit_give_nan_weights():
    q = np.ones(40, np.float32)
    q[3] = np.nan
    for replacement in (False, True):
        s = jax.jit(
            lambda q, r=replacement: leverage.sample_rows(KEY, q, 4, 1.5, replacement=r)
        )(q)
        assert np.all(np.isnan(np.asarray(s.weights))), replacement
