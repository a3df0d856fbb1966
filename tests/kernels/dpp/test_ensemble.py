"""Tests for jaxsampling.kernels.dpp.ensemble (L-ensemble, correlation-kernel and k-DPP draws).

100,000 draws from fixed keys: the law over all subsets against
``det(L_S) / det(I + L)`` and ``|det(K - I_{not S})|`` enumerated in numpy
(a rank-4 ``L`` on 5 items, a ``K`` with eigenvalues 1 and 0), chi-square;
the law of the size against ``size_distribution`` and the inclusions against
``diag(K)`` (Binomial) on 40 items with the bucketed chain rule; the
``DPPDraw`` layout; the default ``max_size``; the overflow fallback (eager:
redraw with ``max_size = rank``, same sets; jit: flagged, no items, true
size); the k-DPP law and its phase one against ``det(L_S)`` and
``prod lambda_J``; ``log_elementary_symmetric`` against exact rational sums,
with eigenvalues from 1e-30 to 1e30 and 500 of them.
"""

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from jaxsampling import testing
from jaxsampling.kernels import dpp
from jaxsampling.kernels.dpp import ensemble
from tests.kernels.dpp import common, reference


_draws = common.ensemble_draws
bucketed_draws = common.bucketed_draws


LAWS = {
    "likelihood5": lambda: reference.likelihood_law(common.likelihood5()),
    "correlation5": lambda: reference.correlation_law(common.correlation5()),
}


@pytest.mark.parametrize("name", sorted(LAWS))
def test_subset_law(name):
    _, draw = _draws(name, 4)
    assert not draw.overflow.any()
    common.assert_valid_draws(draw.indices, 5, draw.size)
    law = LAWS[name]()
    np.testing.assert_allclose(law.sum(), 1.0, rtol=1e-12)
    codes = reference.set_codes(draw.indices)
    testing.assert_chi_square(reference.histogram(codes, 2**5), law)


@pytest.mark.parametrize("name", sorted(LAWS))
def test_size_law_small(name):
    _, draw = _draws(name, 4)
    pmf = np.asarray(dpp.size_distribution(common.spectrum(name).marginals), np.float64)
    testing.assert_chi_square(np.bincount(draw.size, minlength=5), pmf / pmf.sum())


def test_size_law_and_inclusions_bucketed():
    # 40 items, rank 40, max_size 16: the chain rule is bucketed.
    _, draw = bucketed_draws()
    assert not draw.overflow.any()
    common.assert_valid_draws(draw.indices, 40, draw.size)
    spectrum = common.spectrum("likelihood40")
    pmf = np.asarray(dpp.size_distribution(spectrum.marginals), np.float64)
    testing.assert_chi_square(np.bincount(draw.size, minlength=pmf.size), pmf / pmf.sum())
    member = np.zeros((draw.size.size, 41), bool)
    np.put_along_axis(member, np.where(draw.indices < 0, 40, draw.indices), True, axis=1)
    member = member[:, :40]
    K = common.correlation_of(common.likelihood40())
    testing.assert_binomial_count(member.sum(axis=0), member.shape[0], np.diag(K))
    first = member[:, :12].astype(np.int64)
    iu = np.triu_indices(12, 1)
    pairs = np.outer(np.diag(K), np.diag(K))[:12, :12] - K[:12, :12] ** 2
    testing.assert_binomial_count((first.T @ first)[iu], member.shape[0], pairs[iu])


def test_draw_layout():
    _, draw = _draws("likelihood5", 4)
    assert draw.indices.shape == (common.NUM_DRAWS, 4) and draw.indices.dtype == np.int32
    assert draw.size.dtype == np.int32 and draw.overflow.dtype == np.bool_
    np.testing.assert_array_equal(draw.size, (draw.indices != dpp.PAD).sum(axis=1))
    np.testing.assert_array_equal(dpp.DPPDraw(*draw).mask, draw.indices != -1)
    # Items first, then -1: position j holds an item iff j < size.
    np.testing.assert_array_equal(draw.indices != -1, np.arange(4) < draw.size[:, None])
    assert draw.size.max() == 4 and draw.size.min() == 0  # both ends occur


def test_default_max_size():
    # Shapes only (eval_shape traces without compiling).
    spectrum = common.spectrum("likelihood40")
    key = jax.random.key(5)
    assert dpp.max_size_for(spectrum) == 16 < spectrum.rank == 40
    concrete = jax.eval_shape(lambda k: dpp.sample(k, spectrum, num_draws=4), key)
    assert concrete.indices.shape == (4, 16)  # max_size_for of the concrete spectrum
    traced = jax.eval_shape(lambda k, s: dpp.sample(k, s, num_draws=4), key, spectrum)
    assert traced.indices.shape == (4, 40)  # a traced spectrum: the rank
    single = jax.eval_shape(lambda k: dpp.sample(k, spectrum), key)
    assert single.indices.shape == (16,) and single.size.shape == single.overflow.shape == ()
    wide = jax.eval_shape(lambda k: dpp.sample(k, spectrum, max_size=99, num_draws=2), key)
    assert wide.indices.shape == (2, 40)  # capped at the rank


# ----------------------------------------------------------------------------
# Overflow: a draw larger than max_size.
# ----------------------------------------------------------------------------

def _overflow_case():
    """The first 256 keys of the likelihood5 law draws and their draws (max_size = rank)."""
    keys, draw = _draws("likelihood5", 4)
    return keys[:256], jax.tree.map(lambda x: x[:256], draw)


def test_eager_overflow_redraws_the_same_sets():
    # Eagerly, max_size = 1 < some sizes: the batch is redrawn with max_size =
    # rank and the same keys, so the sets are those of a max_size = rank call.
    keys, full = _overflow_case()
    assert full.size.max() > 1
    small = dpp.sample(keys, common.spectrum("likelihood5"), max_size=1)
    assert small.indices.shape == (256, 4)  # the whole batch, at the rank
    assert not small.overflow.any()
    for a, b in zip(small, full):
        np.testing.assert_array_equal(a, b)


def test_jit_overflow_is_flagged():
    keys, full = _overflow_case()
    draw = jax.tree.map(np.asarray, common.sample(keys, common.spectrum("likelihood5"), max_size=2))
    assert draw.indices.shape == (256, 2)
    over = full.size > 2
    assert 0 < over.sum() < 256
    np.testing.assert_array_equal(draw.overflow, over)
    np.testing.assert_array_equal(draw.size, full.size)  # the true size
    assert np.all(draw.indices[over] == dpp.PAD)
    np.testing.assert_array_equal(draw.indices[~over], full.indices[~over, :2])
    assert np.all(full.indices[~over, 2:] == dpp.PAD)


# ----------------------------------------------------------------------------
# k-DPP.
# ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _k_draws(name, k):
    spectrum = common.spectrum(name)
    S = common.sample_k(jax.random.key(7 + k), spectrum, k=k, num_draws=common.NUM_DRAWS)
    return np.asarray(S)


def test_sample_k_law():
    S = _k_draws("likelihood6", 3)
    assert S.shape == (common.NUM_DRAWS, 3)
    common.assert_valid_draws(S, 6, np.full(S.shape[0], 3))
    law = reference.k_dpp_law(common.likelihood6(), 3)
    testing.assert_chi_square(reference.histogram(reference.set_codes(S), 2**6), law)


@pytest.mark.slow
def test_sample_k_law_at_the_rank():
    # k = rank = 4 of a rank-deficient L: every eigenvector is kept.
    S = _k_draws("likelihood5", 4)
    common.assert_valid_draws(S, 5, np.full(S.shape[0], 4))
    law = reference.k_dpp_law(common.likelihood5(), 4)
    testing.assert_chi_square(reference.histogram(reference.set_codes(S), 2**5), law)


def test_select_k_law():
    # Phase one alone: k = 3 of 6 eigenvectors with P(J) propto prod_{j in J} lambda_j.
    spectrum = common.spectrum("likelihood6")
    log_lam = spectrum.log_eigenvalues
    table = dpp.log_elementary_symmetric(log_lam, 3)
    keys = jax.random.split(jax.random.key(8), common.NUM_DRAWS)
    keep = np.asarray(
        jax.jit(jax.vmap(lambda key: ensemble.select_k(key, log_lam, table, 3)))(keys)
    )
    assert np.all(keep.sum(axis=1) == 3)
    lam = np.exp(np.asarray(log_lam, np.float64))
    law = reference.k_subset_law(lambda J: np.prod(lam[J]), 6, 3)
    codes = keep.astype(np.int64) @ (1 << np.arange(6))
    testing.assert_chi_square(reference.histogram(codes, 2**6), law)


# ----------------------------------------------------------------------------
# log e_k in log space.
# ----------------------------------------------------------------------------

_log_e = jax.jit(dpp.log_elementary_symmetric, static_argnames="k")


def _assert_log_tables_close(actual, expected, rtol):
    actual = np.asarray(actual, np.float64)
    assert actual.shape == expected.shape
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(np.isfinite(actual), finite)
    np.testing.assert_array_equal(actual[~finite], expected[~finite])  # -inf
    np.testing.assert_allclose(actual[finite], expected[finite], rtol=rtol, atol=rtol)


LOG_E_CASES = {
    "moderate": np.array([4.0, 2.0, 1.0, 0.5, 0.2, 0.05]),
    "tiny and huge": np.array([1e-30, 1e30, 3.0, 1e-30, 2e30, 0.5, 1e-29, 7e29]),
    "with zeros": np.array([2.0, 0.0, 1e-30, 0.0, 5.0]),
}


@pytest.mark.parametrize("name", sorted(LOG_E_CASES))
def test_log_elementary_symmetric_exact(name, x64):
    values = LOG_E_CASES[name]
    k = 4
    expected = reference.log_elementary_symmetric(values, k)
    table = _log_e(jnp.log(jnp.asarray(values)), k=k)
    _assert_log_tables_close(table, expected, 1e-12)


def test_log_elementary_symmetric_exact_float32():
    values = LOG_E_CASES["tiny and huge"]
    expected = reference.log_elementary_symmetric(values, 4)
    table = _log_e(jnp.log(jnp.asarray(values, jnp.float32)), k=4)
    assert table.dtype == jnp.float32
    _assert_log_tables_close(table, expected, 1e-5)


def _closed_form_log_e(a, log_a, b, log_b, k):
    """``log e_k`` of ``a`` values ``exp(log_a)`` and ``b`` values ``exp(log_b)``."""
    j = np.arange(max(0, k - b), min(a, k) + 1)
    terms = [
        reference.log_binomial(a, i)
        + reference.log_binomial(b, k - i)
        + i * log_a
        + (k - i) * log_b
        for i in j
    ]
    return logsumexp(terms)


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-10), ("float32", 1e-5)])
def test_log_elementary_symmetric_500_extreme_values(dtype, rtol, x64):
    # 250 eigenvalues 1e30 and 250 of 1e-30, interleaved: e_500 = 1 (log 0),
    # e_250 = 1e7500; every entry stays finite in log space.
    log_big, log_small = math.log(1e30), math.log(1e-30)
    log_values = np.where(np.arange(500) % 2 == 0, log_big, log_small).astype(dtype)
    table = np.asarray(_log_e(jnp.asarray(log_values), k=500), np.float64)
    assert table.shape == (501, 501)
    n, l = np.indices(table.shape)
    assert np.all(np.isfinite(table[l <= n])) and np.all(table[l > n] == -np.inf)
    np.testing.assert_array_equal(table[:, 0], 0.0)
    expected = [_closed_form_log_e(250, log_big, 250, log_small, k) for k in range(501)]
    # Round-off is relative to the summed magnitudes |log lambda| (e_500 = 1 sums to 0).
    atol = rtol * np.abs(log_values.astype(np.float64)).sum()
    np.testing.assert_allclose(table[-1], expected, rtol=rtol, atol=atol)


def test_log_elementary_symmetric_brute_force_itertools(x64):
    # A direct sum over subsets in float64 for moderate values.
    values = np.random.default_rng(9).uniform(0.1, 3.0, 7)
    table = np.asarray(_log_e(jnp.log(jnp.asarray(values)), k=7))
    for l in range(8):
        total = sum(np.prod(values[list(c)]) for c in itertools.combinations(range(7), l))
        np.testing.assert_allclose(table[-1, l], np.log(total), rtol=1e-12, atol=1e-12)
