"""Tests for jaxsampling.testing: each assertion passes on the right law, fails far off.

All randomness comes from fixed numpy seeds (``np.random.default_rng(0)``, never
tuned); the "wrong law" cases are about 20 standard errors off, so they fail for any
seed, and the "right law" cases fail with probability of order 1e-6.
"""

import doctest

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import signal, stats

from jaxsampling import testing


def _ar1(rng, rho, shape):
    """AR(1) chains x_t = rho x_{t-1} + sqrt(1 - rho^2) e_t, stationary law N(0, 1)."""
    noise = rng.normal(size=shape)
    noise[..., 0] /= np.sqrt(1 - rho**2)  # start in the stationary law
    return signal.lfilter([np.sqrt(1 - rho**2)], [1.0, -rho], noise, axis=-1)


def test_docstring_examples_run():
    result = doctest.testmod(testing)
    assert result.attempted > 0
    assert result.failed == 0


# --------------------------------------------------------------------------
# assert_binomial_count
# --------------------------------------------------------------------------


class TestBinomialCount:
    def test_passes_on_binomial_draw(self):
        rng = np.random.default_rng(0)
        z = testing.assert_binomial_count(rng.binomial(10_000, 0.4), 10_000, 0.4)
        assert 0 <= z <= 5

    def test_returns_z(self):
        z = testing.assert_binomial_count(4100, 10_000, 0.4)
        assert z == pytest.approx(100 / np.sqrt(10_000 * 0.4 * 0.6))

    def test_fails_20_sigma_off_with_message(self):
        sigma = np.sqrt(10_000 * 0.4 * 0.6)
        with pytest.raises(AssertionError) as info:
            testing.assert_binomial_count(round(4000 + 20 * sigma), 10_000, 0.4)
        msg = str(info.value)
        assert "count 4980 vs expected 4000" in msg
        assert f"sigma={sigma:.4g}" in msg
        assert "z = 20" in msg and "exceeds 5" in msg

    def test_vectorised_passes_and_reports_worst_index(self):
        rng = np.random.default_rng(0)
        probs = np.array([[0.1, 0.2, 0.3], [0.5, 0.7, 0.9]])
        counts = rng.binomial(1000, probs)
        assert testing.assert_binomial_count(counts, 1000, probs) <= 5
        bad = counts.copy()
        bad[1, 2] = 1000 * 0.9 - 20 * np.sqrt(1000 * 0.9 * 0.1)
        with pytest.raises(AssertionError, match=r"at index \(1, 2\).*1 of 6"):
            testing.assert_binomial_count(jnp.asarray(bad), 1000, jnp.asarray(probs))

    def test_degenerate_probabilities_need_exact_counts(self):
        assert testing.assert_binomial_count([0, 50], 50, [0.0, 1.0]) == 0.0
        with pytest.raises(AssertionError, match="z = inf"):
            testing.assert_binomial_count(1, 50, 0.0)
        with pytest.raises(AssertionError, match="count 49 vs expected 50"):
            testing.assert_binomial_count(49, 50, 1.0)

    @pytest.mark.parametrize("prob", [-0.1, 1.5, np.nan])
    def test_bad_prob_raises(self, prob):
        with pytest.raises(ValueError, match="prob"):
            testing.assert_binomial_count(1, 10, prob)

    def test_bad_num_sigma_raises(self):
        with pytest.raises(ValueError, match="num_sigma"):
            testing.assert_binomial_count(1, 10, 0.1, num_sigma=0.0)


# --------------------------------------------------------------------------
# assert_mean_close and assert_mean_close_known_sigma
# --------------------------------------------------------------------------


class TestMeanClose:
    def test_passes_1d_and_2d(self):
        rng = np.random.default_rng(0)
        assert testing.assert_mean_close(rng.exponential(size=10_000), 1.0) <= 5
        x = rng.normal(loc=[1.0, -2.0, 3.0], scale=[1.0, 0.1, 5.0], size=(10_000, 3))
        assert testing.assert_mean_close(jnp.asarray(x), [1.0, -2.0, 3.0]) <= 5
        assert testing.assert_mean_close(x.T, [1.0, -2.0, 3.0], axis=1) <= 5

    def test_fails_20_sigma_off_with_message(self):
        rng = np.random.default_rng(0)
        x = rng.normal(loc=0.2, size=10_000)  # standard error 0.01: 20 sigma off
        with pytest.raises(AssertionError) as info:
            testing.assert_mean_close(x, 0.0)
        msg = str(info.value)
        se = x.std(ddof=1) / np.sqrt(x.size)
        assert f"mean {x.mean():.4g} vs expected 0" in msg
        assert f"standard error={se:.4g}" in msg and "n=10000" in msg
        assert f"z = {x.mean() / se:.4g} exceeds 5" in msg

    def test_reports_worst_entry(self):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(10_000, 4))
        with pytest.raises(AssertionError, match=r"at index \(2,\).*1 of 4"):
            testing.assert_mean_close(x, [0.0, 0.0, 0.2, 0.0])

    def test_zero_variance_needs_exact_equality(self):
        assert testing.assert_mean_close(np.full(3, 0.1), 0.1) == 0.0
        x = np.stack([np.ones(10), np.arange(10.0)], axis=1)
        assert testing.assert_mean_close(x, [1.0, 4.5]) == 0.0
        with pytest.raises(AssertionError, match="z = inf"):
            testing.assert_mean_close(np.ones(10), 1.0 + 1e-12)

    def test_nan_fails(self):
        x = np.random.default_rng(0).normal(size=100)
        x[3] = np.nan
        with pytest.raises(AssertionError, match="z = nan"):
            testing.assert_mean_close(x, 0.0)

    def test_too_few_samples_raises(self):
        with pytest.raises(ValueError, match="at least 2"):
            testing.assert_mean_close(np.ones(1), 1.0)

    def test_known_sigma_passes_and_fails(self):
        rng = np.random.default_rng(0)
        x = rng.exponential(size=10_000)  # mean 1, variance 1: se = 0.01 exactly
        se = 1.0 / np.sqrt(x.size)
        assert testing.assert_mean_close_known_sigma(x.mean(), 1.0, se) <= 5
        with pytest.raises(AssertionError) as info:
            testing.assert_mean_close_known_sigma(x.mean() + 0.2, 1.0, se)
        msg = str(info.value)
        assert "standard error=0.01" in msg and "exceeds 5" in msg

    def test_known_sigma_vectorised_and_exact(self):
        z = testing.assert_mean_close_known_sigma([1.0, 2.0], [1.1, 2.0], [0.1, 0.0])
        assert z == pytest.approx(1.0)
        with pytest.raises(AssertionError, match=r"at index \(1,\)"):
            testing.assert_mean_close_known_sigma([1.0, 2.0], [1.0, 2.5], [0.1, 0.0])
        with pytest.raises(ValueError, match="standard_error"):
            testing.assert_mean_close_known_sigma(1.0, 1.0, -0.1)


# --------------------------------------------------------------------------
# chi_square_test and assert_chi_square
# --------------------------------------------------------------------------


class TestChiSquare:
    def test_passes_on_multinomial_draw(self):
        rng = np.random.default_rng(0)
        probs = np.array([0.1, 0.2, 0.3, 0.4])
        p_value = testing.assert_chi_square(rng.multinomial(10_000, probs), probs)
        assert 1e-6 <= p_value <= 1

    def test_matches_scipy_without_pooling(self):
        rng = np.random.default_rng(0)
        probs = np.array([0.1, 0.2, 0.3, 0.4])
        counts = rng.multinomial(1000, probs)
        stat, p_value, dof = testing.chi_square_test(counts, probs)
        ref = stats.chisquare(counts, 1000 * probs)
        assert dof == 3
        assert stat == pytest.approx(ref.statistic)
        assert p_value == pytest.approx(ref.pvalue)

    def test_fails_on_wrong_law_with_message(self):
        rng = np.random.default_rng(0)
        counts = rng.multinomial(10_000, [0.25, 0.25, 0.25, 0.25])
        with pytest.raises(AssertionError) as info:
            testing.assert_chi_square(counts, [0.1, 0.2, 0.3, 0.4])
        msg = str(info.value)
        assert "on 3 dof" in msg and "< min_p_value 1e-06" in msg
        assert "largest contribution: cell (0,)" in msg

    def test_pooling_small_cells(self):
        # Expected counts 480, 480, 20, 10, 5, 3, 2 with min_expected=25: the last
        # five cells (40 expected in all) are pooled into one.
        probs = np.array([480, 480, 20, 10, 5, 3, 2]) / 1000
        counts = np.array([470, 490, 25, 5, 4, 4, 2])
        stat, p_value, dof = testing.chi_square_test(counts, probs, min_expected=25)
        expected = np.array([480, 480, 40])
        observed = np.array([470, 490, 40])
        assert dof == 2
        assert stat == pytest.approx(np.sum((observed - expected) ** 2 / expected))
        assert p_value == pytest.approx(stats.chi2.sf(stat, 2))

    def test_pooled_cell_below_threshold_merges_into_smallest(self):
        # Expected 490, 490, 10, 5, 5 with min_expected=25: the pooled cell (20) is
        # still too small and joins the smallest remaining cell.
        probs = np.array([490, 490, 10, 5, 5]) / 1000
        counts = np.array([500, 480, 10, 5, 5])
        stat, _, dof = testing.chi_square_test(counts, probs, min_expected=25)
        assert dof == 1
        expected, observed = np.array([490, 510]), np.array([500, 500])
        assert stat == pytest.approx(np.sum((observed - expected) ** 2 / expected))

    def test_pooling_everything_is_vacuous(self):
        assert testing.chi_square_test([1, 2], [0.5, 0.5]) == (0.0, 1.0, 0)

    def test_zero_probability_cells(self):
        probs = [0.5, 0.0, 0.5]
        stat, p_value, dof = testing.chi_square_test([50, 0, 50], probs)
        assert (stat, p_value, dof) == (0.0, 1.0, 1)
        assert testing.chi_square_test([50, 1, 50], probs)[:2] == (np.inf, 0.0)
        with pytest.raises(AssertionError, match=r"cell \(1,\) has probability 0"):
            testing.assert_chi_square([50, 1, 50], probs)

    def test_multidimensional_histogram(self):
        rng = np.random.default_rng(0)
        probs = np.outer([0.3, 0.7], [0.2, 0.3, 0.5])
        counts = rng.multinomial(5000, probs.ravel()).reshape(2, 3)
        assert testing.assert_chi_square(counts, probs) >= 1e-6
        with pytest.raises(AssertionError, match=r"cell \(0, 2\)"):
            testing.assert_chi_square(counts, probs.T.ravel().reshape(2, 3))

    def test_probabilities_normalised_within_tolerance(self):
        probs = np.array([0.5, 0.5 + 5e-7])
        assert testing.assert_chi_square([500, 500], probs) > 0.9

    @pytest.mark.parametrize(
        "counts, probs, match",
        [
            ([5, 5], [0.5, 0.6], "sum to 1"),
            ([5, 5], [1.5, -0.5], ">= 0"),
            ([5, 5, 5], [0.5, 0.5], "shape"),
            ([5, -1], [0.5, 0.5], "observed_counts"),
            ([0, 0], [0.5, 0.5], "sums to 0"),
        ],
    )
    def test_bad_input_raises(self, counts, probs, match):
        with pytest.raises(ValueError, match=match):
            testing.assert_chi_square(counts, probs)


# --------------------------------------------------------------------------
# effective_sample_size and assert_mcse
# --------------------------------------------------------------------------


class TestEffectiveSampleSize:
    # The Geyer estimator's relative standard deviation is about 8% for an AR(1)
    # chain with rho = 0.9 and 20000 steps (and smaller for iid draws), so a factor
    # of 1.5 either way is more than 4 of its standard deviations.
    FACTOR = 1.5

    def test_iid(self):
        x = np.random.default_rng(0).normal(size=20_000)
        ess = testing.effective_sample_size(x)
        assert 20_000 / self.FACTOR < ess < 20_000 * self.FACTOR

    @pytest.mark.parametrize("shape", [(20_000,), (4, 5_000)])
    def test_ar1(self, shape):
        rho = 0.9
        x = _ar1(np.random.default_rng(0), rho, shape)
        truth = x.size * (1 - rho) / (1 + rho)  # about 1053
        ess = testing.effective_sample_size(x)
        assert truth / self.FACTOR < ess < truth * self.FACTOR

    def test_event_dims(self):
        x = np.random.default_rng(0).normal(size=(2, 1000, 3, 2))
        ess = testing.effective_sample_size(x)
        assert ess.shape == (3, 2)
        assert np.all((2000 / self.FACTOR < ess) & (ess < 2000 * self.FACTOR))

    def test_constant_and_short(self):
        assert np.isnan(testing.effective_sample_size(np.ones(10)))
        with pytest.raises(ValueError, match="at least 4 steps"):
            testing.effective_sample_size(np.ones((2, 3)))


class TestMCSE:
    def test_ar1_naive_fails_where_mcse_passes(self):
        # 100 independent AR(1) chains (rho = 0.9, tau = 19) from the right law. The
        # iid standard error is sqrt(19) too small, so the naive 5-sigma check fails
        # for each chain with probability P(|N(0, 1)| > 5 / sqrt(19)), about 0.25;
        # the MCSE check passes for every chain.
        rho, num_chains = 0.9, 100
        chains = _ar1(np.random.default_rng(0), rho, (num_chains, 4000))
        naive_fails = []
        for chain in chains:
            assert testing.assert_mcse(chain, 0.0) <= 5
            try:
                testing.assert_mean_close(chain, 0.0)
                naive_fails.append(False)
            except AssertionError:
                naive_fails.append(True)
        p_naive = 2 * stats.norm.sf(5 / np.sqrt((1 + rho) / (1 - rho)))
        testing.assert_binomial_count(sum(naive_fails), num_chains, p_naive)
        # One such chain, concretely: the naive check rejects, the MCSE accepts.
        chain = chains[naive_fails.index(True)]
        with pytest.raises(AssertionError):
            testing.assert_mean_close(chain, 0.0)
        testing.assert_mcse(chain, 0.0)

    def test_multichain_passes_and_fails_20_mcse_off(self):
        rho = 0.9
        chains = _ar1(np.random.default_rng(0), rho, (4, 5000))
        assert testing.assert_mcse(jnp.asarray(chains), 0.0) <= 5
        mcse = np.sqrt((1 + rho) / (1 - rho) / chains.size)
        with pytest.raises(AssertionError) as info:
            testing.assert_mcse(chains + 20 * mcse, 0.0)
        msg = str(info.value)
        assert "MCSE=" in msg and "ESS=" in msg and "of 4x5000 draws" in msg
        assert "exceeds 5" in msg

    def test_event_dims_report_worst(self):
        chains = _ar1(np.random.default_rng(0), 0.5, (2, 3, 4000)).transpose(0, 2, 1)
        assert testing.assert_mcse(chains, [0.0, 0.0, 0.0]) <= 5
        with pytest.raises(AssertionError, match=r"at index \(1,\).*1 of 3"):
            testing.assert_mcse(chains, [0.0, 1.0, 0.0])

    def test_constant_chain_needs_exact_equality(self):
        assert testing.assert_mcse(np.full((2, 10), 3.0), 3.0) == 0.0
        with pytest.raises(AssertionError, match="z = inf"):
            testing.assert_mcse(np.full((2, 10), 3.0), 3.5)


# --------------------------------------------------------------------------
# assert_variance_less
# --------------------------------------------------------------------------


class TestVarianceLess:
    def test_passes_when_ordered(self):
        rng = np.random.default_rng(0)
        a = rng.normal(scale=1.0, size=5000)
        b = rng.normal(scale=1.5, size=5000)
        z = testing.assert_variance_less(a, b)
        assert z < -5
        assert testing.assert_variance_less(a, b, strict=True) == z

    def test_fails_when_reversed_with_message(self):
        rng = np.random.default_rng(0)
        a = rng.normal(scale=1.5, size=5000)
        b = rng.normal(scale=1.0, size=5000)
        with pytest.raises(AssertionError) as info:
            testing.assert_variance_less(a, b)
        msg = str(info.value)
        assert f"variance {a.var(ddof=1):.4g}" in msg and "n=5000" in msg
        assert "violates z <= 5" in msg

    def test_equal_variances_pass_tolerant_fail_strict(self):
        rng = np.random.default_rng(0)
        a, b = rng.normal(size=(2, 5000))
        assert abs(testing.assert_variance_less(a, b)) <= 5
        with pytest.raises(AssertionError, match=r"violates z <= -5 \(strict\)"):
            testing.assert_variance_less(a, b, strict=True)

    def test_standard_error_from_fourth_moment(self):
        # For N(0, sigma^2) draws, se(s^2) = sigma^2 sqrt(2 / n); the difference of
        # two such variances has se sqrt(se_a^2 + se_b^2).
        rng = np.random.default_rng(0)
        n = 20_000
        a = rng.normal(scale=1.0, size=n)
        b = rng.normal(scale=2.0, size=n)
        z = testing.assert_variance_less(a, b)
        se = np.sqrt(2 / n * (1.0 + 16.0))
        assert z == pytest.approx((a.var(ddof=1) - b.var(ddof=1)) / se, rel=0.05)

    def test_total_variance_for_vectors(self):
        # Coordinate 0 of `a` has the larger variance, but its total variance
        # (1.44 + 0.25 + 0.25 = 1.94) is below that of `b` (3): totals are compared.
        rng = np.random.default_rng(0)
        a = rng.normal(scale=[1.2, 0.5, 0.5], size=(5000, 3))
        b = rng.normal(scale=[1.0, 1.0, 1.0], size=(5000, 3))
        assert testing.assert_variance_less(a, b, strict=True) < -5
        with pytest.raises(AssertionError, match="total variance"):
            testing.assert_variance_less(b, a)

    def test_zero_variance(self):
        assert testing.assert_variance_less(np.ones(10), np.ones(10)) == 0.0
        with pytest.raises(AssertionError):
            testing.assert_variance_less(np.ones(10), np.ones(10), strict=True)

    def test_bad_shapes_raise(self):
        with pytest.raises(ValueError, match="trailing"):
            testing.assert_variance_less(np.ones((10, 2)), np.ones((10, 3)))
        with pytest.raises(ValueError, match=r"\(n,\) or \(n, d\)"):
            testing.assert_variance_less(np.ones((10, 2, 2)), np.ones((10, 2, 2)))
