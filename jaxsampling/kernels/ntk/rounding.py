"""Rounding an ensemble's real outputs to bits.

Three rules, from the least to the most use of the task's structure:

* ``"sign"`` (**the paper's rule**, Giapitzakis et al. 2025): bit = ``output > 0``.
  Rounding at ``1/2`` fails even with infinitely many models (``mu_1(h)`` falls
  below ``1/2`` for large weights ``h``); ``0`` separates the means
  ``mu_0(h) <= 0 < mu_1(h)`` for every ``h``, but the zero-bit mean sits just below
  it, so many models are needed (for relu; with erf ``mu_0 = 0`` exactly and the
  sign rule never gets there).
* ``"threshold"``: bit = ``output > c(h)``, ``c(h) = (mu_1(h) + mu_0(h)) / 2``
  between the two class means of the input's Hamming weight ``h``
  (:func:`midpoint_thresholds`).
* ``"top_h"``: a permutation preserves the Hamming weight, so keep the ``h``
  largest outputs (ties go to the lower index).

Example:
  >>> import jax.numpy as jnp
  >>> from jaxsampling.kernels import ntk
  >>> out = jnp.array([[0.7, -0.01, 0.02]])
  >>> ntk.round_outputs(out, "sign").tolist(), ntk.round_outputs(out, "top_h", weights=jnp.array([1])).tolist()
  ([[1, 0, 1]], [[1, 0, 0]])
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxsampling.kernels.ntk.permutation import HammingPosterior
from jaxsampling.types import Array

#: The rules, in the order recovery counts are reported.
RULES = ("sign", "threshold", "top_h")
#: The rule of Giapitzakis et al. (2025).
PAPER_RULE = "sign"


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    return rule


def midpoint_thresholds(posterior: HammingPosterior) -> Array:
    """``c(h) = (mu_1(h) + mu_0(h)) / 2`` for ``h = 1 .. k`` (the ``"threshold"`` rule)."""
    return (posterior.mean_one + posterior.mean_zero) / 2


def round_outputs(
    outputs: Array,
    rule: str,
    *,
    weights: Array | None = None,
    thresholds: Array | None = None,
    tolerance: float = 0.0,
) -> Array:
    """Bits (int32) from real outputs ``[..., k]``.

    Args:
        outputs: The ensemble's outputs, last axis the ``k`` bits.
        rule: One of :data:`RULES`.
        weights: Hamming weight of each input (``outputs.shape[:-1]``); needed
            by ``"threshold"`` and ``"top_h"``.
        thresholds: ``[k]`` thresholds ``c(h)`` indexed by ``h - 1``; needed by
            ``"threshold"``.
        tolerance: ``"sign"`` only: bit = ``output > tolerance`` (a scalar, or
            one value per input, shaped ``outputs.shape[:-1]``). ``0`` is the
            paper's rule; a trained finite network leaves ``~1e-7`` (its
            training residual, of either sign) where a training input's zero
            bit should be, so ``0`` misrounds about half of those bits.
    """
    check_rule(rule)
    if rule == "sign":
        tolerance = jnp.asarray(tolerance)
        cut = tolerance[..., None] if tolerance.ndim else tolerance
        return (outputs > cut).astype(jnp.int32)
    if weights is None:
        raise ValueError(f"rule {rule!r} needs the inputs' Hamming weights (weights=)")
    weights = jnp.asarray(weights)
    if rule == "threshold":
        if thresholds is None:
            raise ValueError("rule 'threshold' needs thresholds= (see midpoint_thresholds)")
        k = outputs.shape[-1]
        thresholds = jnp.asarray(thresholds)
        if thresholds.shape != (k,):
            raise ValueError(f"thresholds must be [{k}] (one per Hamming weight), got {thresholds.shape}")
        cut = thresholds[jnp.clip(weights - 1, 0, k - 1)]
        return (outputs > cut[..., None]).astype(jnp.int32)
    order = jnp.argsort(-outputs, axis=-1, stable=True)
    rank = jnp.argsort(order, axis=-1, stable=True)
    return (rank < weights[..., None]).astype(jnp.int32)
