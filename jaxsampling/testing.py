"""Statistical assertions for testing samplers.

Every assertion here is a hypothesis test whose tolerance comes from the sampling
error of the statistic (a standard error, a Binomial sigma, a chi-square law),
never from a hand-tuned constant. Each one:

* accepts numpy arrays, JAX arrays or Python numbers (converted with
  ``np.asarray``; the statistics are computed on the host in float64 with numpy and
  ``scipy.stats``; this is test code, not kernel code);
* raises ``AssertionError`` whose message shows the statistic, the bound and a
  summary of the inputs (for vectorised checks: the worst entry and its index);
* returns the statistic (a z-score or a p-value) so callers can log it;
* raises ``ValueError`` on malformed input (bad shapes, probabilities that are not
  a distribution, too few samples).

With ``num_sigma=5`` a correct sampler fails a single check with probability about
``6e-7`` (Gaussian approximation), so a test suite with fixed seeds stays green
without tuning the seeds, while a sampler that is off by many standard errors fails.

Functions:

* :func:`assert_binomial_count`: a count of successes against ``Binomial(n, p)``.
* :func:`assert_mean_close`: a sample mean against its expectation (i.i.d. draws).
* :func:`assert_mean_close_known_sigma`: the same with a known standard error.
* :func:`chi_square_test`, :func:`assert_chi_square`: Pearson goodness of fit.
* :func:`effective_sample_size`, :func:`assert_mcse`: means of correlated MCMC output.
* :func:`assert_variance_less`: ``Var(a) <= Var(b)`` up to the standard error.

Example:
    >>> import numpy as np
    >>> from jaxsampling import testing
    >>> rng = np.random.default_rng(0)
    >>> z = testing.assert_mean_close(rng.normal(size=10_000), 0.0)
    >>> p = testing.assert_chi_square(rng.multinomial(1000, [0.2, 0.3, 0.5]),
    ...                               [0.2, 0.3, 0.5])
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

__all__ = [
    "assert_binomial_count",
    "assert_chi_square",
    "assert_mcse",
    "assert_mean_close",
    "assert_mean_close_known_sigma",
    "assert_variance_less",
    "chi_square_test",
    "effective_sample_size",
]


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _as_float64(x: ArrayLike, name: str) -> np.ndarray:
    """Converts ``x`` to a float64 numpy array, naming ``x`` on failure."""
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be numeric array-like, got {x!r}") from e


def _check_num_sigma(num_sigma: float) -> float:
    num_sigma = float(num_sigma)
    if not num_sigma > 0:
        raise ValueError(f"num_sigma must be positive, got {num_sigma}")
    return num_sigma


def _fmt(x: float) -> str:
    """Formats a scalar compactly (4 significant digits, integers exactly)."""
    x = float(x)
    if np.isfinite(x) and x == round(x) and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.4g}"


def _z_scores(
    estimate: np.ndarray, expected: np.ndarray, sigma: np.ndarray
) -> np.ndarray:
    """Returns ``|estimate - expected| / sigma``, elementwise.

    Where ``sigma == 0`` the estimate must equal the expectation exactly: z is 0 if
    it does and ``inf`` otherwise. NaN inputs give a NaN z (which fails any bound).
    """
    diff = np.abs(estimate - expected)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = diff / sigma
    degenerate = sigma == 0
    z = np.where(degenerate, np.where(diff == 0, 0.0, np.inf), z)
    return np.where(np.isnan(diff) | np.isnan(sigma), np.nan, z)


def _worst_index(z: np.ndarray) -> tuple[int, ...]:
    """Index of the worst entry of ``z``: the first NaN, else the largest."""
    flat = z.reshape(-1)
    nan = np.flatnonzero(np.isnan(flat))
    i = int(nan[0]) if nan.size else int(np.argmax(flat))
    return tuple(int(k) for k in np.unravel_index(i, z.shape))


def _check_z_bound(
    z: np.ndarray,
    num_sigma: float,
    name: str,
    describe: Callable[[tuple[int, ...]], str],
) -> float:
    """Raises if any ``z > num_sigma`` (or is NaN); returns the worst z.

    Args:
      z: non-negative z-scores, any shape.
      num_sigma: the bound.
      name: the assertion's name, for the message.
      describe: maps the worst entry's index to a description of that entry.

    Returns:
      The largest z (NaN if any entry is NaN).
    """
    idx = _worst_index(z)
    worst = float(z[idx]) if z.ndim else float(z)
    failing = ~(z <= num_sigma)  # NaN fails.
    if np.any(failing):
        where = f" at index {idx}" if z.ndim else ""
        count = ""
        if z.size > 1:
            count = f" ({int(failing.sum())} of {z.size} entries fail)"
        raise AssertionError(
            f"{name} failed{where}: {describe(idx)}: z = {_fmt(worst)} exceeds "
            f"{_fmt(num_sigma)}{count}"
        )
    return worst


# ---------------------------------------------------------------------------
# Counts and means
# ---------------------------------------------------------------------------


def assert_binomial_count(
    count: ArrayLike,
    num_trials: ArrayLike,
    prob: ArrayLike,
    num_sigma: float = 5.0,
) -> float:
    r"""Asserts that ``count`` is a plausible draw from ``Binomial(num_trials, prob)``.

    The z-score of a count :math:`k` of :math:`n` trials with success probability
    :math:`p` is

    .. math::
        z = \frac{|k - n p|}{\sigma}, \qquad \sigma = \sqrt{n p (1 - p)},

    and the check is :math:`z \le` ``num_sigma`` (the Gaussian approximation to
    the Binomial, accurate when :math:`n p (1-p)` is not tiny). When
    :math:`p \in \{0, 1\}`, :math:`\sigma = 0` and the count must equal
    :math:`n p` exactly.

    ``count``, ``num_trials`` and ``prob`` broadcast against each other; the check is
    elementwise (for example, the counts of every cell of a histogram against their
    marginal Binomial laws) and the message reports the worst entry and its index.

    Args:
      count: observed number(s) of successes.
      num_trials: number(s) of trials :math:`n \ge 0`.
      prob: success probability(ies) in :math:`[0, 1]`.
      num_sigma: the bound on :math:`z`.

    Returns:
      The largest z-score over all entries.

    Raises:
      AssertionError: if any entry has :math:`z >` ``num_sigma``.
      ValueError: if ``prob`` is outside ``[0, 1]``, ``num_trials`` is negative, or
        the shapes do not broadcast.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> z = assert_binomial_count(rng.binomial(10_000, 0.4), 10_000, 0.4)
        >>> z = assert_binomial_count([0, 10], 10, [0.0, 1.0])  # exact cases
    """
    num_sigma = _check_num_sigma(num_sigma)
    k = _as_float64(count, "count")
    n = _as_float64(num_trials, "num_trials")
    p = _as_float64(prob, "prob")
    if np.any((p < 0) | (p > 1)) or np.any(np.isnan(p)):
        raise ValueError(f"prob must lie in [0, 1], got {p}")
    if np.any(n < 0) or np.any(np.isnan(n)):
        raise ValueError(f"num_trials must be non-negative, got {n}")
    try:
        k, n, p = np.broadcast_arrays(k, n, p)
    except ValueError as e:
        raise ValueError(
            f"count {k.shape}, num_trials {n.shape} and prob {p.shape} do not "
            "broadcast"
        ) from e
    mean = n * p
    sigma = np.sqrt(n * p * (1.0 - p))
    z = _z_scores(k, mean, sigma)

    def describe(i):
        return (
            f"count {_fmt(k[i])} vs expected {_fmt(mean[i])} ± {_fmt(num_sigma)} "
            f"sigma (sigma={_fmt(sigma[i])}; n={_fmt(n[i])}, p={_fmt(p[i])})"
        )

    return _check_z_bound(z, num_sigma, "assert_binomial_count", describe)


def assert_mean_close(
    samples: ArrayLike,
    expected_mean: ArrayLike,
    num_sigma: float = 5.0,
    axis: int = 0,
) -> float:
    r"""Asserts that the mean of i.i.d. ``samples`` is close to ``expected_mean``.

    With :math:`n` draws along ``axis``, sample mean :math:`\bar x` and sample
    standard deviation :math:`s` (``ddof=1``), the standard error is
    :math:`s / \sqrt{n}` and the check is

    .. math::
        z = \frac{|\bar x - \mu|}{s / \sqrt{n}} \le \texttt{num\_sigma}.

    The check is vectorised over the remaining dimensions (for example samples of
    shape ``(n, d)`` check ``d`` means); ``expected_mean`` broadcasts against the
    mean's shape and the message reports the worst entry. An entry whose samples are
    all equal (zero sample variance) must equal ``expected_mean`` exactly.

    The draws must be independent; for correlated MCMC output use
    :func:`assert_mcse`.

    Args:
      samples: draws, with the draw index along ``axis``.
      expected_mean: the true mean, broadcastable to the shape of the mean.
      num_sigma: the bound on :math:`z`.
      axis: the axis indexing draws.

    Returns:
      The largest z-score over all entries.

    Raises:
      AssertionError: if any entry has :math:`z >` ``num_sigma`` (or is NaN).
      ValueError: if there are fewer than 2 draws or the shapes do not broadcast.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(loc=[1.0, -2.0], size=(10_000, 2))
        >>> z = assert_mean_close(x, [1.0, -2.0])
    """
    num_sigma = _check_num_sigma(num_sigma)
    x = np.moveaxis(_as_float64(samples, "samples"), axis, 0)
    n = x.shape[0] if x.ndim else 0
    if n < 2:
        raise ValueError(f"samples need at least 2 draws along axis {axis}, got {n}")
    mean = x.mean(axis=0)
    std = x.std(axis=0, ddof=1)
    constant = np.all(x == x[0], axis=0)
    # For constant draws compare the draws themselves: their float mean can be off
    # by one ulp.
    mean = np.where(constant, x[0], mean)
    se = np.where(constant, 0.0, std / np.sqrt(n))
    try:
        mu = np.broadcast_to(_as_float64(expected_mean, "expected_mean"), mean.shape)
    except ValueError as e:
        raise ValueError(
            f"expected_mean of shape {np.shape(expected_mean)} does not broadcast to "
            f"the mean's shape {mean.shape}"
        ) from e
    z = _z_scores(mean, mu, se)

    def describe(i):
        return (
            f"mean {_fmt(mean[i])} vs expected {_fmt(mu[i])} ± {_fmt(num_sigma)} "
            f"sigma (standard error={_fmt(se[i])}, std={_fmt(std[i])}, n={n})"
        )

    return _check_z_bound(z, num_sigma, "assert_mean_close", describe)


def assert_mean_close_known_sigma(
    sample_mean: ArrayLike,
    expected_mean: ArrayLike,
    standard_error: ArrayLike,
    num_sigma: float = 5.0,
) -> float:
    r"""Asserts that a mean is within ``num_sigma`` known standard errors of the truth.

    Use this when the standard error is known rather than estimated, for example
    :math:`\sqrt{\mathrm{Var}(X) / n}` from an exact variance, so that

    .. math::
        z = \frac{|\bar x - \mu|}{\mathrm{se}} \le \texttt{num\_sigma}.

    All arguments broadcast; the check is elementwise and the message reports the
    worst entry. A zero standard error requires exact equality.

    Args:
      sample_mean: the estimate(s).
      expected_mean: the true value(s).
      standard_error: the known standard error(s) of ``sample_mean``, :math:`\ge 0`.
      num_sigma: the bound on :math:`z`.

    Returns:
      The largest z-score over all entries.

    Raises:
      AssertionError: if any entry has :math:`z >` ``num_sigma`` (or is NaN).
      ValueError: if ``standard_error`` is negative or the shapes do not broadcast.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> x = rng.exponential(size=10_000)  # mean 1, variance 1
        >>> z = assert_mean_close_known_sigma(x.mean(), 1.0, 1.0 / np.sqrt(x.size))
    """
    num_sigma = _check_num_sigma(num_sigma)
    m = _as_float64(sample_mean, "sample_mean")
    mu = _as_float64(expected_mean, "expected_mean")
    se = _as_float64(standard_error, "standard_error")
    if np.any(se < 0):
        raise ValueError(f"standard_error must be non-negative, got {se}")
    try:
        m, mu, se = np.broadcast_arrays(m, mu, se)
    except ValueError as e:
        raise ValueError(
            f"sample_mean {m.shape}, expected_mean {mu.shape} and standard_error "
            f"{se.shape} do not broadcast"
        ) from e
    z = _z_scores(m, mu, se)

    def describe(i):
        return (
            f"mean {_fmt(m[i])} vs expected {_fmt(mu[i])} ± {_fmt(num_sigma)} sigma "
            f"(standard error={_fmt(se[i])})"
        )

    return _check_z_bound(z, num_sigma, "assert_mean_close_known_sigma", describe)


# ---------------------------------------------------------------------------
# Chi-square goodness of fit
# ---------------------------------------------------------------------------


def _validate_counts_and_probs(
    observed_counts: ArrayLike, expected_probs: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Flattens, validates and normalises a histogram and its cell probabilities."""
    obs = _as_float64(observed_counts, "observed_counts")
    probs = _as_float64(expected_probs, "expected_probs")
    if obs.shape != probs.shape:
        raise ValueError(
            f"observed_counts shape {obs.shape} != expected_probs shape {probs.shape}"
        )
    obs, probs = obs.reshape(-1), probs.reshape(-1)
    if obs.size == 0:
        raise ValueError("observed_counts is empty")
    if not np.all(np.isfinite(obs)) or np.any(obs < 0):
        raise ValueError(f"observed_counts must be finite and >= 0, got {obs}")
    if obs.sum() == 0:
        raise ValueError("observed_counts sums to 0: nothing to test")
    if not np.all(np.isfinite(probs)) or np.any(probs < 0):
        raise ValueError(f"expected_probs must be finite and >= 0, got {probs}")
    total = probs.sum()
    if abs(total - 1.0) > 1e-6:
        raise ValueError(
            f"expected_probs must sum to 1 (within 1e-6), got sum {total!r}"
        )
    return obs, probs / total


def _pool_cells(
    obs: np.ndarray, expected: np.ndarray, min_expected: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """Pools small cells; returns (observed, expected, number of cells pooled).

    Cells with expected count ``< min_expected`` are merged into one cell. If that
    pooled cell is itself below ``min_expected``, it is merged into the remaining
    cell with the smallest expected count. Cells with zero expected count must have
    zero observed count (checked by the caller) and are dropped.
    """
    keep = expected > 0
    obs, expected = obs[keep], expected[keep]
    small = expected < min_expected
    num_pooled = int(small.sum())
    if num_pooled == 0:
        return obs, expected, 0
    big_obs, big_exp = obs[~small], expected[~small]
    pool_obs, pool_exp = obs[small].sum(), expected[small].sum()
    if pool_exp < min_expected and big_exp.size:
        j = int(np.argmin(big_exp))
        big_obs, big_exp = big_obs.copy(), big_exp.copy()
        big_obs[j] += pool_obs
        big_exp[j] += pool_exp
        return big_obs, big_exp, num_pooled
    return np.append(big_obs, pool_obs), np.append(big_exp, pool_exp), num_pooled


def chi_square_test(
    observed_counts: ArrayLike,
    expected_probs: ArrayLike,
    min_expected: float = 5.0,
) -> tuple[float, float, int]:
    r"""Pearson's chi-square goodness-of-fit test of a histogram.

    With :math:`N = \sum_i O_i` draws and expected counts :math:`E_i = N p_i`,

    .. math::
        X^2 = \sum_i \frac{(O_i - E_i)^2}{E_i}
        \;\sim\; \chi^2_{K - 1} \text{ approximately},

    where :math:`K` is the number of cells after pooling, and the p-value is
    :math:`P(\chi^2_{K-1} \ge X^2)`.

    Pooling: the chi-square approximation needs moderately large expected counts,
    so every cell with :math:`E_i <` ``min_expected`` is merged into a single pooled
    cell (observed and expected counts summed). If the pooled cell still has an
    expected count below ``min_expected``, it is merged into the remaining cell with
    the smallest expected count. Cells with :math:`p_i = 0` are dropped (they carry
    no information when :math:`O_i = 0`); if such a cell has :math:`O_i > 0` the
    histogram is impossible under the null and the result is
    ``(inf, 0.0, K - 1)``. With a single cell left the test is vacuous:
    ``(0.0, 1.0, 0)``.

    Args:
      observed_counts: counts :math:`O_i \ge 0`, any shape (cells are flattened).
      expected_probs: cell probabilities :math:`p_i \ge 0`, the same shape; they
        are renormalised if they sum to 1 within ``1e-6``.
      min_expected: the smallest expected count of an unpooled cell.

    Returns:
      ``(statistic, p_value, dof)``.

    Raises:
      ValueError: if the shapes differ, counts or probabilities are negative or
        non-finite, the probabilities do not sum to 1 within ``1e-6``, or the counts
        sum to 0.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> probs = np.array([0.1, 0.2, 0.3, 0.4])
        >>> stat, p_value, dof = chi_square_test(rng.multinomial(1000, probs), probs)
        >>> dof
        3
    """
    obs, probs = _validate_counts_and_probs(observed_counts, expected_probs)
    expected = obs.sum() * probs
    pooled_obs, pooled_exp, _ = _pool_cells(obs, expected, float(min_expected))
    dof = pooled_obs.size - 1
    if np.any((probs == 0) & (obs > 0)):
        return float("inf"), 0.0, dof
    if dof < 1:
        return 0.0, 1.0, 0
    statistic = float(np.sum((pooled_obs - pooled_exp) ** 2 / pooled_exp))
    return statistic, float(stats.chi2.sf(statistic, dof)), dof


def assert_chi_square(
    observed_counts: ArrayLike,
    expected_probs: ArrayLike,
    min_p_value: float = 1e-6,
    min_expected: float = 5.0,
) -> float:
    r"""Asserts that a histogram fits ``expected_probs`` (Pearson chi-square test).

    Runs :func:`chi_square_test` (which pools cells with expected count below
    ``min_expected``, see there) and asserts ``p_value >= min_p_value``. The default
    ``1e-6`` is about the two-sided 5-sigma Gaussian tail. A cell with probability 0
    but a positive count fails immediately, naming the cell.

    Args:
      observed_counts: counts :math:`O_i \ge 0`, any shape (cells are flattened).
      expected_probs: cell probabilities, the same shape, summing to 1 within
        ``1e-6``.
      min_p_value: the smallest acceptable p-value.
      min_expected: the smallest expected count of an unpooled cell.

    Returns:
      The p-value.

    Raises:
      AssertionError: if ``p_value < min_p_value`` or a zero-probability cell was
        observed.
      ValueError: as :func:`chi_square_test`.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> probs = np.full(6, 1 / 6)
        >>> p_value = assert_chi_square(rng.multinomial(6000, probs), probs)
    """
    obs, probs = _validate_counts_and_probs(observed_counts, expected_probs)
    shape = np.shape(observed_counts)
    impossible = np.flatnonzero((probs == 0) & (obs > 0))
    if impossible.size:
        i = int(impossible[0])
        idx = tuple(int(k) for k in np.unravel_index(i, shape))
        raise AssertionError(
            f"assert_chi_square failed: cell {idx} has probability 0 but observed "
            f"count {_fmt(obs[i])} ({impossible.size} impossible cell(s) observed; "
            f"n={_fmt(obs.sum())} over {obs.size} cells)"
        )
    statistic, p_value, dof = chi_square_test(obs, probs, min_expected)
    if not p_value >= min_p_value:
        expected = obs.sum() * probs
        nonzero = expected > 0
        contrib = np.zeros_like(obs)
        contrib[nonzero] = (obs[nonzero] - expected[nonzero]) ** 2 / expected[nonzero]
        i = int(np.argmax(contrib))
        idx = tuple(int(k) for k in np.unravel_index(i, shape))
        num_pooled = _pool_cells(obs, expected, float(min_expected))[2]
        raise AssertionError(
            f"assert_chi_square failed: chi-square {_fmt(statistic)} on {dof} dof, "
            f"p-value {p_value:.3g} < min_p_value {min_p_value:.3g} "
            f"(n={_fmt(obs.sum())} over {obs.size} cells, {num_pooled} pooled; "
            f"largest contribution: cell {idx} observed {_fmt(obs[i])} vs expected "
            f"{_fmt(expected[i])})"
        )
    return p_value


# ---------------------------------------------------------------------------
# MCMC: effective sample size and Monte Carlo standard error
# ---------------------------------------------------------------------------


def _as_chains(chains: ArrayLike, name: str) -> np.ndarray:
    """Returns ``chains`` as float64 of shape ``(num_chains, num_steps, *event)``."""
    x = _as_float64(chains, name)
    if x.ndim == 0:
        raise ValueError(
            f"{name} must have shape (num_steps,) or (num_chains, num_steps, ...), "
            "got a scalar"
        )
    if x.ndim == 1:
        x = x[None]
    if x.shape[1] < 4:
        raise ValueError(
            f"{name} needs at least 4 steps per chain, got shape {x.shape}"
        )
    return x


def _autocovariance(x: np.ndarray) -> np.ndarray:
    """Biased (1/n) autocovariance along axis 1, for all lags, via the FFT."""
    n = x.shape[1]
    centred = x - x.mean(axis=1, keepdims=True)
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(centred, n=size, axis=1)
    return np.fft.irfft(f * np.conj(f), n=size, axis=1)[:, :n] / n


def _geyer_tau(rho: np.ndarray) -> float:
    """Integrated autocorrelation time from autocorrelations ``rho[0] = 1, ...``.

    Geyer's initial monotone sequence: pair sums ``P_k = rho[2k] + rho[2k+1]`` are
    summed up to the first negative one, after being made non-increasing.
    """
    num_pairs = rho.size // 2
    pairs = rho[: 2 * num_pairs].reshape(num_pairs, 2).sum(axis=1)
    negative = np.flatnonzero(pairs < 0)
    pairs = pairs[: negative[0]] if negative.size else pairs
    pairs = np.minimum.accumulate(pairs)
    return -1.0 + 2.0 * float(pairs.sum())


def effective_sample_size(chains: ArrayLike) -> np.ndarray | float:
    r"""Effective sample size of (possibly several) correlated chains.

    Uses the multi-chain autocorrelation estimate of Stan / ArviZ (Vehtari, Gelman,
    Simpson, Carpenter and Bürkner 2021, "Rank-normalization, folding, and
    localization", without the rank normalisation) and Geyer's (1992) initial
    monotone sequence estimator. For :math:`M` chains of :math:`N` steps, with
    per-chain biased autocovariances :math:`\hat\gamma_{m,t}`, mean within-chain
    variance :math:`W` and the variance of the chain means :math:`B/N`,

    .. math::
        \hat\rho_t = 1 - \frac{W - \frac1M\sum_m \hat\gamma_{m,t}}{\hat V^+},
        \qquad \hat V^+ = \frac{N-1}{N} W + \frac{B}{N},

    the pair sums :math:`P_k = \hat\rho_{2k} + \hat\rho_{2k+1}` are truncated at the
    first negative one and made non-increasing, and

    .. math::
        \hat\tau = -1 + 2 \sum_k P_k, \qquad
        \mathrm{ESS} = \frac{M N}{\max(\hat\tau, 1/\log_{10}(MN))}.

    For an AR(1) chain with coefficient :math:`\rho` the truth is
    :math:`\tau = (1 + \rho) / (1 - \rho)`.

    Args:
      chains: shape ``(num_steps,)``, ``(num_chains, num_steps)`` or
        ``(num_chains, num_steps, *event)`` (one ESS per event entry), with at
        least 4 steps.

    Returns:
      The ESS: a float for 1-D or 2-D input, an array of shape ``event`` otherwise.
      NaN where the chains are constant.

    Raises:
      ValueError: on a scalar input or fewer than 4 steps.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> ess = effective_sample_size(rng.normal(size=(4, 1000)))  # about 4000
        >>> bool(3000 < ess < 5000)
        True
    """
    x = _as_chains(chains, "chains")
    m, n = x.shape[:2]
    event = x.shape[2:]
    x = x.reshape(m, n, -1)
    ess = np.empty(x.shape[2])
    for j in range(x.shape[2]):
        xj = x[:, :, j]
        acov = _autocovariance(xj)
        w = acov[:, 0].mean() * n / (n - 1)
        between = xj.mean(axis=1).var(ddof=1) if m > 1 else 0.0
        var_plus = w * (n - 1) / n + between
        if not var_plus > 0:
            ess[j] = np.nan
            continue
        rho = 1.0 - (w - acov.mean(axis=0)) / var_plus
        rho[0] = 1.0
        tau = max(_geyer_tau(rho), 1.0 / np.log10(m * n))
        ess[j] = m * n / tau
    return float(ess[0]) if not event else ess.reshape(event)


def assert_mcse(
    chain_or_chains: ArrayLike,
    expected_mean: ArrayLike,
    num_sigma: float = 5.0,
) -> float:
    r"""Asserts that the mean of correlated MCMC output is within its MCSE of the truth.

    The Monte Carlo standard error uses the effective sample size of
    :func:`effective_sample_size` (Geyer's initial monotone sequence on the
    multi-chain autocorrelations): with :math:`\bar x` and :math:`s` the mean and
    standard deviation (``ddof=1``) of all :math:`M N` draws,

    .. math::
        z = \frac{|\bar x - \mu|}{s / \sqrt{\mathrm{ESS}}} \le \texttt{num\_sigma}.

    Chains should be past burn-in. The ESS is itself estimated, so short chains
    (ESS of a few tens) have heavier-tailed z than the Gaussian. Constant chains
    (zero variance) must equal ``expected_mean`` exactly.

    Args:
      chain_or_chains: shape ``(num_steps,)``, ``(num_chains, num_steps)`` or
        ``(num_chains, num_steps, *event)`` (vectorised over ``event``, worst entry
        reported).
      expected_mean: the true mean, broadcastable to ``event``.
      num_sigma: the bound on :math:`z`.

    Returns:
      The largest z-score over all entries.

    Raises:
      AssertionError: if any entry has :math:`z >` ``num_sigma`` (or is NaN).
      ValueError: on fewer than 4 steps or shapes that do not broadcast.

    Example:
        >>> import numpy as np
        >>> from scipy import signal
        >>> rng = np.random.default_rng(0)
        >>> rho = 0.9  # an AR(1) chain with stationary law N(0, 1)
        >>> noise = np.sqrt(1 - rho**2) * rng.normal(size=(4, 5000))
        >>> chains = signal.lfilter([1.0], [1.0, -rho], noise, axis=1)
        >>> z = assert_mcse(chains, 0.0)
    """
    num_sigma = _check_num_sigma(num_sigma)
    x = _as_chains(chain_or_chains, "chain_or_chains")
    m, n = x.shape[:2]
    event = x.shape[2:]
    draws = x.reshape(m * n, *event)
    mean = draws.mean(axis=0)
    std = draws.std(axis=0, ddof=1)
    constant = np.all(draws == draws[0], axis=0)
    mean = np.where(constant, draws[0], mean)
    ess = np.asarray(effective_sample_size(x))
    with np.errstate(invalid="ignore"):
        mcse = np.where(constant, 0.0, std / np.sqrt(np.where(constant, 1.0, ess)))
    try:
        mu = np.broadcast_to(_as_float64(expected_mean, "expected_mean"), mean.shape)
    except ValueError as e:
        raise ValueError(
            f"expected_mean of shape {np.shape(expected_mean)} does not broadcast to "
            f"the event shape {mean.shape}"
        ) from e
    z = _z_scores(mean, mu, mcse)
    ess = np.broadcast_to(ess, mean.shape)

    def describe(i):
        return (
            f"mean {_fmt(mean[i])} vs expected {_fmt(mu[i])} ± {_fmt(num_sigma)} "
            f"sigma (MCSE={_fmt(mcse[i])}, std={_fmt(std[i])}, "
            f"ESS={_fmt(ess[i])} of {m}x{n} draws)"
        )

    return _check_z_bound(z, num_sigma, "assert_mcse", describe)


# ---------------------------------------------------------------------------
# Variance comparisons
# ---------------------------------------------------------------------------


def _total_variance(x: np.ndarray, name: str) -> tuple[float, float, int]:
    """Total sample variance of ``(n,)`` or ``(n, d)`` draws and its standard error."""
    if x.ndim not in (1, 2):
        raise ValueError(f"{name} must have shape (n,) or (n, d), got {x.shape}")
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"{name} needs at least 2 draws, got {n}")
    centred = x - x.mean(axis=0)
    y = (centred**2).reshape(n, -1).sum(axis=1)  # ||x_i - mean||^2
    total = float(y.sum() / (n - 1))
    se = float(np.sqrt(y.var() / n))
    return total, se, n


def assert_variance_less(
    samples_a: ArrayLike,
    samples_b: ArrayLike,
    num_sigma: float = 5.0,
    strict: bool = False,
) -> float:
    r"""Asserts ``Var(a) <= Var(b)`` with a tolerance from the standard errors.

    For draws of shape ``(n,)`` the statistic is the sample variance :math:`s^2`
    (``ddof=1``); for ``(n, d)`` it is the total variance
    :math:`T = \sum_j s_j^2 = \frac{1}{n-1}\sum_i \|x_i - \bar x\|^2` (the trace of
    the covariance). Its standard error is estimated from
    :math:`y_i = \|x_i - \bar x\|^2` as :math:`\mathrm{se}(T) \approx
    \mathrm{sd}(y) / \sqrt n`, which for :math:`d = 1` is the usual
    :math:`\sqrt{(m_4 - s^4) / n}` with :math:`m_4` the fourth central moment.
    With ``a`` and ``b`` independent,

    .. math::
        z = \frac{T_a - T_b}{\sqrt{\mathrm{se}(T_a)^2 + \mathrm{se}(T_b)^2}}.

    By default (``strict=False``) the check is a tolerance: it fails only when
    :math:`z >` ``num_sigma``, that is when ``a`` has a larger variance than ``b``
    beyond sampling noise; equal variances pass. With ``strict=True`` the ordering
    must be demonstrated: :math:`z \le -` ``num_sigma`` (``Var(a)`` is smaller by
    at least ``num_sigma`` standard errors), which needs enough draws to resolve the
    gap. Both need the fourth moment to exist; the normal approximation is good for
    a few hundred draws or more.

    Args:
      samples_a: draws of shape ``(n_a,)`` or ``(n_a, d)``.
      samples_b: draws of shape ``(n_b,)`` or ``(n_b, d)``, independent of ``a``.
      num_sigma: the tolerance (or, with ``strict``, the required separation).
      strict: require a significant ordering instead of tolerating equality.

    Returns:
      The signed z-score :math:`z` (negative when ``a`` has the smaller variance).

    Raises:
      AssertionError: if the ordering check fails.
      ValueError: on fewer than 2 draws, ranks other than 1 or 2, or mismatched
        ``d``.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> a = rng.normal(scale=1.0, size=5000)
        >>> b = rng.normal(scale=2.0, size=5000)
        >>> z = assert_variance_less(a, b, strict=True)
        >>> z = assert_variance_less(a, a[::-1])  # equal variances pass by default
    """
    num_sigma = _check_num_sigma(num_sigma)
    a = _as_float64(samples_a, "samples_a")
    b = _as_float64(samples_b, "samples_b")
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(
            f"samples_a {a.shape} and samples_b {b.shape} differ in their trailing "
            "dimension"
        )
    var_a, se_a, n_a = _total_variance(a, "samples_a")
    var_b, se_b, n_b = _total_variance(b, "samples_b")
    se = np.sqrt(se_a**2 + se_b**2)
    diff = var_a - var_b
    if se > 0:
        z = diff / se
    else:
        z = 0.0 if diff == 0 else np.copysign(np.inf, diff)
    bound = -num_sigma if strict else num_sigma
    if not z <= bound:
        kind = "total variance" if a.ndim == 2 else "variance"
        rule = (
            f"z <= -{_fmt(num_sigma)} (strict)" if strict else f"z <= {_fmt(num_sigma)}"
        )
        raise AssertionError(
            f"assert_variance_less failed: {kind} {_fmt(var_a)} (se {_fmt(se_a)}, "
            f"n={n_a}) vs {_fmt(var_b)} (se {_fmt(se_b)}, n={n_b}): difference "
            f"{_fmt(diff)} with standard error {_fmt(se)}, z = {_fmt(z)} violates "
            f"{rule}"
        )
    return float(z)
