"""Ensemble complexity: how many averaged models recover the permutation.

The average of ``M`` independent infinite-width models is Gaussian with the
posterior mean and ``1/M`` of its variance (:func:`.permutation_posterior`);
outputs are independent. For an input of Hamming weight ``h`` (``h`` one-bits
with mean ``mu_1``, ``k - h`` zero-bits with mean ``mu_0``, standard deviation
``s = sigma / sqrt(M)``), the probability that the rounded average is wrong:

* ``"sign"``: ``q = 1 - Phi(mu_1 / s)^h Phi(-mu_0 / s)^(k-h)``,
* ``"threshold"``: the same with ``mu_b - c(h)`` in place of ``mu_b``,
* ``"top_h"``: ``q = P(max of the zero-bits > min of the one-bits)``
  ``= int (k-h) phi(z) Phi(z)^(k-h-1) [1 - Phi(d - z)^h] dz``, ``d = (mu_1 - mu_0) / s``
  (Simpson's rule on 2049 points of ``[-9, 9]``).

``q`` is computed through ``log Phi`` and ``expm1`` so that failure
probabilities of ``1e-12`` keep their relative accuracy in float32.

All inputs: the fraction recovered has expectation ``sum_h C(k, h) (1 - q_h) /
(2^k - 1)``; the probability that every input is recovered depends on the
correlations between inputs, so :func:`all_inputs_probability` gives it under
independence and the union lower bound ``1 - sum_h C(k, h) q_h``; near 1 they
agree to ``O((sum C q)^2)``.

Example (k = 12, probability 0.99: the sign rule needs 1241 models, the others tens):
  >>> from jaxsampling.kernels import ntk
  >>> post = ntk.permutation_posterior(12)
  >>> [ntk.min_ensemble_size(post, 0.99, rule) for rule in ntk.RULES]
  [1241, 26, 13]
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr

from jaxsampling.kernels.ntk.permutation import HammingPosterior, num_inputs_of_weight
from jaxsampling.kernels.ntk.rounding import check_rule, midpoint_thresholds
from jaxsampling.types import Array

_GRID = jnp.linspace(-9.0, 9.0, 2049)
_SIMPSON = jnp.concatenate([jnp.array([1.0]), jnp.tile(jnp.array([4.0, 2.0]), 1023), jnp.array([4.0, 1.0])])


class AllInputs(NamedTuple):
    """Probability that an ensemble recovers every one of the ``2^k - 1`` inputs.

    Attributes:
        independent: ``prod_h (1 - q_h)^C(k, h)``: inputs treated as independent.
        lower_bound: ``1 - sum_h C(k, h) q_h`` (union bound; may be negative).
    """

    independent: Array
    lower_bound: Array


def _log_correct(margin: Array, scale: Array, inclusive: bool) -> Array:
    """``log P(margin + scale * Z > 0)`` (``>= 0`` when ``inclusive``); exact at ``scale = 0``."""
    safe = jnp.where(scale > 0, scale, 1.0)
    certain = (margin >= 0) if inclusive else (margin > 0)
    return jnp.where(scale > 0, log_ndtr(margin / safe), jnp.where(certain, 0.0, -jnp.inf))


def failure_probability(posterior: HammingPosterior, num_models, rule: str) -> Array:
    """``[k]``: probability that an average of ``num_models`` models misses an input of weight ``h``.

    Args:
        posterior: The per-weight posterior (:func:`.permutation_posterior`).
        num_models: ``M`` (any positive number; traced values are fine).
        rule: One of :data:`.RULES`.
    """
    check_rule(rule)
    mean_one, mean_zero, variance = posterior
    k = mean_one.shape[0]
    h = jnp.arange(1, k + 1, dtype=mean_one.dtype)
    scale = jnp.sqrt(variance / num_models)
    if rule == "top_h":
        return _top_h_failure(mean_one - mean_zero, scale, h, k)
    cut = 0.0 if rule == "sign" else midpoint_thresholds(posterior)
    log_ones = _log_correct(mean_one - cut, scale, inclusive=False)  # one-bits need > cut
    log_zeros = _log_correct(cut - mean_zero, scale, inclusive=True)  # zero-bits need <= cut
    log_p = h * log_ones + jnp.where(h < k, (k - h) * log_zeros, 0.0)
    return -jnp.expm1(log_p)


def _top_h_failure(gap: Array, scale: Array, h: Array, k: int) -> Array:
    safe = jnp.where(scale > 0, scale, 1.0)
    d = gap / safe
    zeros = (k - h)[:, None]
    z = _GRID[None, :]
    log_density = jnp.log(jnp.maximum(zeros, 1.0)) + jax.scipy.stats.norm.logpdf(z) + (
        zeros - 1
    ) * log_ndtr(z)
    miss = -jnp.expm1(h[:, None] * log_ndtr(d[:, None] - z))
    step = (_GRID[1] - _GRID[0]) / 3
    q = jnp.sum(_SIMPSON * jnp.exp(log_density) * miss, axis=1) * step
    q = jnp.where(scale > 0, q, jnp.where(gap > 0, 0.0, 1.0))
    return jnp.where(h < k, jnp.clip(q, 0.0, 1.0), 0.0)


def expected_fraction(posterior: HammingPosterior, num_models, rule: str) -> Array:
    """Expected fraction of the ``2^k - 1`` inputs that ``num_models`` averaged models recover."""
    q = failure_probability(posterior, num_models, rule)
    counts = jnp.asarray(num_inputs_of_weight(q.shape[0]), q.dtype)
    return 1 - jnp.sum(counts * q) / jnp.sum(counts)


def all_inputs_probability(posterior: HammingPosterior, num_models, rule: str) -> AllInputs:
    """Probability that ``num_models`` averaged models recover every input (see module doc)."""
    q = failure_probability(posterior, num_models, rule)
    counts = jnp.asarray(num_inputs_of_weight(q.shape[0]), q.dtype)
    return AllInputs(jnp.exp(jnp.sum(counts * jnp.log1p(-q))), 1 - jnp.sum(counts * q))


def min_ensemble_size(
    posterior: HammingPosterior,
    target: float,
    rule: str,
    *,
    scope: str = "all",
    max_models: int = 2**30,
) -> int | None:
    """The smallest ``M`` whose average recovers the inputs with probability ``>= target``.

    Host-side search (doubling, then bisection) over the jitted probability.

    Args:
        posterior: The per-weight posterior.
        target: Probability in ``(0, 1)``.
        rule: One of :data:`.RULES`.
        scope: ``"all"``: every input at once (independent inputs, see
            :class:`AllInputs`); ``"each"``: every single input, the worst weight.
        max_models: Give up above this size.

    Returns:
        ``M``, or ``None`` when even ``max_models`` (or infinitely many) models
        fall short: a rule whose threshold does not separate the means never gets there.
    """
    if not 0 < target < 1:
        raise ValueError(f"target must be in (0, 1), got {target}")
    if scope not in ("all", "each"):
        raise ValueError(f"scope must be 'all' or 'each', got {scope!r}")
    check_rule(rule)

    @jax.jit
    def reached(m):
        if scope == "all":
            return all_inputs_probability(posterior, m, rule).independent >= target
        return jnp.min(1 - failure_probability(posterior, m, rule)) >= target

    def ok(m: int) -> bool:
        return bool(reached(jnp.asarray(m, posterior.variance.dtype)))

    high = 1
    while not ok(high):
        high *= 2
        if high > max_models:
            return None
    low = high // 2  # ok(low) is False (or low = 0)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if ok(mid) else (mid, high)
    return high

