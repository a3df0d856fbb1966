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
correlations between inputs. :func:`all_inputs_probability` gives it under
independence and the union lower bound ``1 - sum_h C(k, h) q_h`` (near 1 they
agree to ``O((sum C q)^2)``); :func:`critical_ensemble_sizes` samples the full
joint law (``k <= 12`` or so) and gives ``P(all | M)`` for every ``M`` at once.
The inputs' failures are positively correlated, so independence is
pessimistic: at ``k = 8`` and ``M = 4`` it gives 0.0002 (threshold rule) and 0.54
(top-h) where the joint law (and trained ensembles) give 0.19 and 0.79.

Example (k = 12, probability 0.99: the sign rule needs 1241 models, the others tens):
  >>> from jaxsampling.kernels import ntk
  >>> post = ntk.permutation_posterior(12)
  >>> [ntk.min_ensemble_size(post, 0.99, rule) for rule in ntk.RULES]
  [1241, 26, 13]
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr

from jaxsampling.kernels.ntk import infinite, permutation
from jaxsampling.kernels.ntk.permutation import HammingPosterior, num_inputs_of_weight
from jaxsampling.kernels.ntk.rounding import RULES, check_rule, midpoint_thresholds
from jaxsampling.types import Array

_GRID = np.linspace(-9.0, 9.0, 2049)  # numpy: importing the module starts no JAX backend
_SIMPSON = np.concatenate([[1.0], np.tile([4.0, 2.0], 1023), [4.0, 1.0]])


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
    if isinstance(num_models, (int, float)) and num_models <= 0:
        raise ValueError(f"num_models must be > 0, got {num_models}")
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
    return jnp.maximum(-jnp.expm1(log_p), 0.0)


def _top_h_failure(gap: Array, scale: Array, h: Array, k: int) -> Array:
    safe = jnp.where(scale > 0, scale, 1.0)
    d = gap / safe
    zeros = (k - h)[:, None]
    z = jnp.asarray(_GRID, d.dtype)[None, :]
    log_density = jnp.log(jnp.maximum(zeros, 1.0)) + jax.scipy.stats.norm.logpdf(z) + (
        zeros - 1
    ) * log_ndtr(z)
    miss = -jnp.expm1(h[:, None] * log_ndtr(d[:, None] - z))
    step = (_GRID[1] - _GRID[0]) / 3
    q = jnp.sum(jnp.asarray(_SIMPSON, d.dtype) * jnp.exp(log_density) * miss, axis=1) * step
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


@functools.partial(jax.jit, static_argnames=("rule", "scope"))
def _reaches(posterior: HammingPosterior, num_models: Array, target, rule: str, scope: str) -> Array:
    """Whether ``num_models`` averaged models reach ``target`` (compiled once per rule, scope, k)."""
    if scope == "all":
        return all_inputs_probability(posterior, num_models, rule).independent >= target
    return jnp.min(1 - failure_probability(posterior, num_models, rule)) >= target


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

    def ok(m: int) -> bool:
        return bool(_reaches(posterior, jnp.asarray(m, posterior.variance.dtype), target, rule, scope))

    low, high = 0, 1  # ok(low) is False (or low = 0)
    while not ok(high):
        if high >= max_models:
            return None
        low, high = high, min(2 * high, max_models)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if ok(mid) else (mid, high)
    return high



@functools.partial(jax.jit, static_argnames=("k", "num_samples", "batch_size", "activation"))
def critical_ensemble_sizes(
    key: Array,
    k: int,
    *,
    num_samples: int,
    batch_size: int = 64,
    activation: str = "relu",
) -> Array:
    """Monte Carlo over the full Gaussian-process law: the smallest ``M`` each draw needs.

    The ensemble average of ``M`` models at every input is ``mu + Z / sqrt(M)``
    with ``Z`` one draw of the centred process (all ``2^k - 1`` inputs jointly,
    the ``k`` outputs independent; training inputs, deterministic at
    convergence, left out). For a fixed ``Z`` the rounded average recovers
    every input exactly when ``M`` exceeds a critical size ``M*(Z)``: per bit
    with margin ``m > 0`` to the rule's cut and noise ``z``, ``M > (z / m)^2``
    when ``z`` points the wrong way (``top_h``: ``((max_zeros z - min_ones z) /
    (mu_1 - mu_0))^2``). So ``P(every input recovered by M models) = P(M* <= M)``
    for all ``M`` at once, correlations between inputs included; compare
    :func:`all_inputs_probability`, which treats inputs as independent.

    Cost: one ``eigh`` of the ``(2^k - k - 1)``-square covariance (``k <= 12`` or
    so) and ``O(k 4^k)`` per draw, shared by the rules.

    Args:
        key: PRNG key.
        k: Number of bits.
        num_samples: Draws (a multiple of ``batch_size``).
        batch_size: Draws per matrix product.
        activation: The network's activation (NTK parameterisation).

    Returns:
        ``float[len(RULES), num_samples]`` critical sizes per rule (``inf`` where
        no ``M`` suffices).

    Example:
      >>> import jax
      >>> from jaxsampling.kernels import ntk
      >>> crit = ntk.critical_ensemble_sizes(jax.random.key(0), 6, num_samples=512)
      >>> [round(float((c <= 64).mean()), 2) for c in crit]  # P(all inputs | M = 64) per rule
      [0.0, 1.0, 1.0]
    """
    k = permutation.check_num_bits(k)
    if batch_size < 1 or num_samples < 1 or num_samples % batch_size:
        raise ValueError(
            f"num_samples ({num_samples}) must be a positive multiple of batch_size ({batch_size})"
        )
    codes = np.arange(1, 2**k)
    codes = codes[np.bitwise_count(codes) > 1]  # the training inputs are exact at convergence
    x = permutation.binary_inputs(jnp.asarray(codes, jnp.int32), k)
    x_train, y_train = permutation.training_set(np.arange(k))
    pred = infinite.predict(x_train, y_train, x, full_covariance=True, activation=activation)
    lam, vecs = jnp.linalg.eigh(pred.covariance)
    factor = vecs * jnp.sqrt(jnp.maximum(lam, 0.0))  # cov = factor factor^T
    post = permutation.permutation_posterior(k, activation=activation)
    weight = jnp.sum(x, axis=1).astype(jnp.int32)
    one = post.mean_one[weight - 1][:, None]
    zero = post.mean_zero[weight - 1][:, None]
    is_one = x > 0  # output i's target is x_i (pi = identity: the law does not depend on pi)

    def separable(noise, cut):  # sign / threshold: every bit on its side of the cut
        margin = jnp.where(is_one, one - cut, cut - zero)
        wrong = jnp.where(is_one, -noise, noise)  # towards the cut
        ratio = wrong / jnp.where(margin > 0, margin, 1.0)
        need = jnp.where(wrong > 0, jnp.where(margin > 0, ratio * ratio, jnp.inf), 0.0)
        return jnp.max(jnp.where(margin < 0, jnp.inf, need))

    def top_h(noise):  # the h largest outputs are the one-bits
        worst = jnp.max(jnp.where(is_one, -jnp.inf, noise), axis=1) - jnp.min(
            jnp.where(is_one, noise, jnp.inf), axis=1
        )
        worst = jnp.where(weight < k, worst, -jnp.inf)
        ratio = worst / (one - zero)[:, 0]
        return jnp.max(jnp.where(worst > 0, ratio * ratio, 0.0))

    def critical(z):  # z: [k, n] standard normal -> M* per rule
        noise = (z @ factor.T).T  # [n, k]: output i at each input
        return jnp.stack([separable(noise, 0.0), separable(noise, (one + zero) / 2), top_h(noise)])

    def batch(batch_key):  # normals drawn per batch: memory batch_size * k * 2^k
        z = jax.random.normal(batch_key, (batch_size, k, x.shape[0]), factor.dtype)
        return jax.vmap(critical)(z)

    keys = jax.random.split(key, num_samples // batch_size)
    return jax.lax.map(batch, keys).reshape(-1, len(RULES)).T
