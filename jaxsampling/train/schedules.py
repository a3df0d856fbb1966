r"""Learning-rate schedules: linear decay (the default) and refinement from a previous run.

Defazio, Cutkosky, Mehta and Mishchenko, "When, Why and How Much? Adaptive
Learning Rate Scheduling by Refinement" (2023) bound the last iterate of SGD
with step sizes :math:`\eta w_t` by a quantity that, for gradient norms
:math:`g_1, \dots, g_T` seen along the run, is minimised by

.. math::

    w_t \propto g_t^{-2} \sum_{p = t + 1}^{T} g_p^{-2}

(their Algorithm 1, for SGD; for Adam-like methods, whose updates are
normalised per coordinate, Algorithm 2 uses the l1 norms of the gradients and
:math:`w_t \propto g_t^{-1} \sum_{p > t} g_p^{-1}`: ``power=1`` here). With
constant norms this is :math:`w_t \propto T - t`: **linear decay**, which is
therefore the default schedule. The norms of a real run are noisy, so they
are first smoothed by a median filter whose width is a fraction ``tau`` of
``T``, and the weights are scaled to peak at 1.

Every schedule is an optax schedule ``step -> learning rate`` (jittable), so
it goes wherever optax takes a ``learning_rate``.

Example:
    >>> import numpy as np
    >>> schedule = refined(np.ones(100), peak_value=0.1)   # constant norms
    >>> [round(float(schedule(s)), 5) for s in (0, 50, 99)]   # 0.1 (99 - s) / 99
    [0.1, 0.04949, 0.0]
    >>> round(float(linear_decay(0.1, 100)(50)), 5)
    0.04949
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
import optax
import scipy.ndimage

__all__ = [
    "KINDS",
    "from_config",
    "linear_decay",
    "power_decay",
    "refined",
    "refinement_weights",
]

KINDS = ("constant", "linear", "cosine", "refined", "power")


def _check_steps(total_steps: Any, warmup_steps: Any) -> tuple[int, int]:
    total, warmup = int(total_steps), int(warmup_steps)
    if total < 1 or total != total_steps:
        raise ValueError(f"total_steps must be a positive integer, got {total_steps}")
    if warmup < 0 or warmup >= total or warmup != warmup_steps:
        raise ValueError(
            f"warmup_steps must be an integer in [0, total_steps), got {warmup_steps}"
        )
    return total, warmup


def _with_warmup(
    schedule: optax.Schedule, peak_value: float, warmup_steps: int
) -> optax.Schedule:
    if not warmup_steps:
        return schedule
    warmup = optax.linear_schedule(0.0, peak_value, warmup_steps)
    return optax.join_schedules([warmup, schedule], [warmup_steps])


def linear_decay(
    peak_value: float, total_steps: int, warmup_steps: int = 0
) -> optax.Schedule:
    r"""Linear warmup to ``peak_value``, then linear decay to 0 at the last step.

    After warmup, step :math:`s` of the :math:`T' = T - \text{warmup}` decay
    steps gets :math:`\eta (T' - 1 - s) / (T' - 1)`: the refined schedule of
    constant gradient norms (:func:`refined` of ``np.ones(T')``).

    Args:
        peak_value: the learning rate after warmup.
        total_steps: the number of steps of the run.
        warmup_steps: steps of linear warmup from 0.

    Returns:
        An optax schedule.
    """
    total, warmup = _check_steps(total_steps, warmup_steps)
    decay_steps = total - warmup
    linear = optax.linear_schedule(peak_value, 0.0, max(decay_steps - 1, 1))

    def decay(count):
        # Under jit, XLA's reciprocal leaves -1e-9 instead of 0 at the end.
        return jnp.maximum(linear(count), 0.0)

    return _with_warmup(decay, peak_value, warmup)


def power_decay(scale: float, exponent: float, offset: float = 2.0) -> optax.Schedule:
    r"""Robbins-Monro step sizes :math:`\eta_s = \text{scale}\,(s + \text{offset})^{-\text{exponent}}`.

    With ``offset = 2`` the update of step ``s`` (0-based) is the paper's
    :math:`\beta_{s+1} = \text{scale}\,(s + 2)^{-b}` of stochastic
    approximation (:func:`jaxsampling.kernels.sa_srrw.regime_schedules`).

    Raises:
        ValueError: ``scale <= 0``, ``exponent < 0`` or ``offset <= 0``.

    Example:
        >>> round(float(power_decay(1.0, 0.5)(2)), 6)   # (2 + 2)^-1/2
        0.5
    """
    if not scale > 0 or not exponent >= 0 or not offset > 0:
        raise ValueError(
            f"power decay needs scale > 0, exponent >= 0, offset > 0; got {scale}, "
            f"{exponent}, {offset}"
        )

    def schedule(count):
        return scale * (jnp.asarray(count, jnp.float32) + offset) ** (-exponent)

    return schedule


def refinement_weights(
    grad_norms: Any, *, tau: float = 0.0, power: int = 2
) -> np.ndarray:
    r"""The refined schedule's relative step sizes :math:`w_t \in [0, 1]` (float64).

    .. math::

        w_t = \hat g_t^{-p} \sum_{s = t + 1}^{T} \hat g_s^{-p} \Big/ \max_u (\cdot)_u,

    where :math:`\hat g` is ``grad_norms`` after a median filter of width
    ``max(1, round(tau * T))`` (odd; edges repeat the end values) and
    :math:`p` = ``power`` (2 for SGD, 1 for Adam-like methods with l1 norms).

    Args:
        grad_norms: float[T], positive and finite: the gradient norms of each
            step of a previous run.
        tau: the median filter's width as a fraction of ``T`` (0: none).
        power: 2 (SGD, l2 norms) or 1 (Adam-like, l1 norms).

    Returns:
        float64[T] weights, the largest equal to 1 and the last equal to 0.

    Raises:
        ValueError: ``grad_norms`` not a 1-D array of at least 2 positive
            finite values, ``tau`` outside [0, 1] or ``power`` not 1 or 2.
    """
    g = np.asarray(grad_norms, np.float64)
    if g.ndim != 1 or g.size < 2:
        raise ValueError(f"grad_norms must be 1-D with >= 2 steps, got {g.shape}")
    if not np.all(np.isfinite(g)) or np.any(g <= 0):
        raise ValueError("grad_norms must be positive and finite")
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must be in [0, 1], got {tau}")
    if power not in (1, 2):
        raise ValueError(f"power must be 1 or 2, got {power}")
    width = max(1, int(round(tau * g.size)))
    width += 1 - width % 2
    smooth = scipy.ndimage.median_filter(g, size=width, mode="nearest")
    inv = smooth**-power
    tail = np.concatenate([np.cumsum(inv[::-1])[::-1][1:], [0.0]])
    weights = inv * tail
    return weights / weights.max()


def refined(
    grad_norms: Any,
    peak_value: float,
    *,
    warmup_steps: int = 0,
    tau: float = 0.0,
    power: int = 2,
) -> optax.Schedule:
    """The refined schedule of a previous run's gradient norms, as an optax schedule.

    Step ``warmup_steps + s`` gets ``peak_value * w_s`` with ``w`` =
    :func:`refinement_weights` of ``grad_norms`` (one norm per decay step:
    ``len(grad_norms)`` = total steps - warmup); steps past the end get 0.

    Args:
        grad_norms: float[T] gradient norms of a previous run's decay steps.
        peak_value: the largest learning rate.
        warmup_steps: linear warmup from 0 before the refined steps.
        tau: median-filter width as a fraction of ``T``.
        power: 2 (SGD) or 1 (Adam-like; pass l1 norms then: the training loop
            records l2 norms, ``TrainState.grad_norms``).

    Returns:
        An optax schedule.
    """
    weights = jnp.asarray(
        refinement_weights(grad_norms, tau=tau, power=power), jnp.float32
    )
    last = weights.shape[0] - 1

    def schedule(count):
        step = jnp.asarray(count)  # join_schedules already subtracts the warmup
        inside = (step >= 0) & (step <= last)
        return jnp.where(inside, peak_value * weights[jnp.clip(step, 0, last)], 0.0)

    return _with_warmup(schedule, peak_value, int(warmup_steps))


def from_config(
    config: Any, total_steps: int, grad_norms: Any | None = None
) -> optax.Schedule:
    """The schedule named by ``config.kind``, one of :data:`KINDS`.

    Reads ``config.kind``, ``config.peak_value``, ``config.warmup_steps``,
    for ``refined`` ``config.tau`` and ``config.power``, and for ``power``
    (:func:`power_decay` with ``scale = peak_value``, no warmup)
    ``config.exponent`` and ``config.offset`` (default 2).

    Args:
        config: a ConfigDict (or mapping with attribute access).
        total_steps: the number of steps of the run.
        grad_norms: float[total_steps - warmup] norms of a previous run; needed
            by ``refined`` only.

    Raises:
        ValueError: unknown kind, bad steps, or ``refined`` without
            ``grad_norms`` of the right length.
    """
    kind = config.kind
    peak = float(config.peak_value)
    total, warmup = _check_steps(total_steps, config.get("warmup_steps", 0))
    if kind == "constant":
        return _with_warmup(optax.constant_schedule(peak), peak, warmup)
    if kind == "linear":
        return linear_decay(peak, total, warmup)
    if kind == "cosine":
        return optax.warmup_cosine_decay_schedule(0.0, peak, warmup, total)
    if kind == "refined":
        if grad_norms is None or len(grad_norms) != total - warmup:
            raise ValueError(
                f"the refined schedule needs the {total - warmup} gradient norms "
                "of a previous run's decay steps"
            )
        return refined(
            grad_norms,
            peak,
            warmup_steps=warmup,
            tau=float(config.get("tau", 0.0)),
            power=int(config.get("power", 2)),
        )
    if kind == "power":
        if warmup:
            raise ValueError("the power schedule takes no warmup_steps")
        return power_decay(peak, float(config.exponent), float(config.get("offset", 2.0)))
    raise ValueError(f"unknown schedule kind {kind!r}; known: {KINDS}")
