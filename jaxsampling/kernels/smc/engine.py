"""The Feynman-Kac SMC engine: one ``step`` and a ``run`` that scans it.

A Feynman-Kac model on paths ``x_0, x_1, ..., x_T`` is an initial law
``M_0``, Markov moves ``M_t(x_{t-1}, dx_t)`` and potentials ``G_0(x_0)``,
``G_t(x_{t-1}, x_t)``. It defines the probability measures

.. math::

    Q_T(dx_{0:T}) = \\frac{1}{Z_T} M_0(dx_0) G_0(x_0)
        \\prod_{t=1}^T M_t(x_{t-1}, dx_t) G_t(x_{t-1}, x_t),

and SMC approximates ``Q_t`` by N weighted particles. Each :func:`step`
(t >= 1) does, in this order:

1. **resample** when ``ESS < ess_threshold * N`` (every step when the
   threshold is >= 1, never when it is 0); the log-weights become uniform;
2. **mutate** ``x_t ~ M_t(x_{t-1}, .)`` for every particle;
3. **reweight** ``log w_i += log G_t(x_{t-1,i}, x_{t,i})`` and add
   ``log sum_i W_i G_t(i)`` (``W`` the normalised weights before the
   update) to the log normalising-constant estimate.

The estimate ``Z_hat = prod_t sum_i W_{t-1,i} G_t(i)`` is unbiased on the
natural scale, ``E[Z_hat] = Z_T``, for every unbiased resampling scheme
(Del Moral 2004; Chopin & Papaspiliopoulos 2020, ch. 16).

Particles are any pytree whose leaves have leading axis N. Weights stay in
log space and are stored normalised (``logsumexp = 0``).

**Flags.** A NaN or ``+inf`` log-potential, or every particle at weight
zero, cannot be checked eagerly inside a scan. The step then reports
``Info.valid = False``; the log-weights become NaN and stay so,
``log_normalizer`` becomes NaN (``-inf`` when every weight is zero), and
resampling is skipped. :func:`run` raises ``ValueError`` naming the first bad step when
its result is concrete (called outside ``jit``).

**Sharding.** Particle leaves may be sharded over a mesh on their leading
axis. The weight sums are all-reduces of scalars; resampling adds the
collectives of :mod:`jaxsampling.kernels.resampling` (an all-gather of the
N weights for the prefix sum, and a gather of particles across devices).
``mutate`` and ``log_potential`` act on each particle and add none.

References:
  Del Moral (2004), Feynman-Kac Formulae. Chopin & Papaspiliopoulos (2020),
  An Introduction to Sequential Monte Carlo, ch. 5, 10 and 16.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsampling import sharding
from jaxsampling.kernels import resampling
from jaxsampling.types import Array, ArrayTree, PRNGKey

__all__ = ["FeynmanKac", "Info", "State", "init", "run", "step"]


class FeynmanKac(NamedTuple):
    """A Feynman-Kac model as pure functions of a step input ``t``.

    ``t`` is whatever the driver passes: the int32 step index for
    :func:`run`, or any pytree (a temperature pair, a noise level) for
    drivers that choose it adaptively.

    Attributes:
      init: ``(key, num_particles) -> particles``, draws from ``M_0``.
      mutate: ``(key, t, particles) -> particles``, draws ``x_t`` from
        ``M_t(x_{t-1}, .)`` for every particle. It may change the number
        of particles (waste-free SMC maps ``N / P`` resampled particles to
        ``N``).
      log_potential: ``(t, previous, particles) -> float[N]``,
        ``log G_t(x_{t-1}, x_t)`` for every particle. ``previous`` are the
        particles ``mutate`` received (after resampling); in waste-free
        steps they are the ``num_ancestors`` chain starts, so the potential
        must map them to the N chain states itself (as
        :mod:`~jaxsampling.kernels.smc.tempering` does).
      initial_log_potential: ``particles -> float[N]``, ``log G_0(x_0)``;
        ``None`` means ``G_0 = 1``.
    """

    init: Callable[[PRNGKey, int], ArrayTree]
    mutate: Callable[[PRNGKey, Any, ArrayTree], ArrayTree]
    log_potential: Callable[[Any, ArrayTree, ArrayTree], Array]
    initial_log_potential: Callable[[ArrayTree], Array] | None = None


class State(NamedTuple):
    """The weighted particle system after a step.

    Attributes:
      particles: pytree, leaves ``[N, ...]``.
      log_weights: float32[N], normalised: ``logsumexp(log_weights) = 0``.
      log_normalizer: float32[], the running estimate of ``log Z_t``.
    """

    particles: ArrayTree  # leaves [N, ...]
    log_weights: Array  # float32[N]
    log_normalizer: Array  # float32[]


class Info(NamedTuple):
    """What one step did.

    Attributes:
      ess: float32[], effective sample size after reweighting.
      resampled: bool[], whether the step resampled before moving.
      log_normalizer_increment: float32[], ``log sum_i W_i G_t(i)``.
      valid: bool[], False when a log-potential was NaN or ``+inf``, or
        every weight is zero (see the module docstring).
    """

    ess: Array  # float32[]
    resampled: Array  # bool[]
    log_normalizer_increment: Array  # float32[]
    valid: Array  # bool[]


def _num_particles(particles: ArrayTree, name: str = "particles") -> int:
    leaves = jax.tree.leaves(particles)
    if not leaves:
        raise ValueError(f"{name} must be a pytree with at least one array leaf")
    sizes = {jnp.shape(leaf)[0] if jnp.ndim(leaf) else None for leaf in leaves}
    if len(sizes) != 1 or None in sizes:
        shapes = [jnp.shape(leaf) for leaf in leaves]
        raise ValueError(
            f"{name} leaves must share one leading (particle) axis, got shapes {shapes}"
        )
    return sizes.pop()


def _check_log_potential(log_g: Any, num_particles: int, where: str) -> Array:
    log_g = jnp.asarray(log_g)
    if log_g.shape != (num_particles,):
        raise ValueError(
            f"{where} must return shape ({num_particles},) (one log-potential per "
            f"particle), got shape {log_g.shape}"
        )
    if not jnp.issubdtype(log_g.dtype, jnp.floating):
        raise ValueError(f"{where} must return floats, got dtype {log_g.dtype}")
    return log_g


def _reweight(
    log_weights: Array, log_g: Array
) -> tuple[Array, Array, Array, Array]:
    """New normalised log-weights, the log-Z increment, the ESS, validity."""
    bad_potential = jnp.any(jnp.isnan(log_g) | (log_g == jnp.inf))
    valid = ~bad_potential & ~jnp.isnan(log_weights).any()
    unnormalised = log_weights + log_g
    scaled, total, log_mean, ess = resampling._weight_summary(
        jnp.where(jnp.isnan(unnormalised), -jnp.inf, unnormalised)
    )
    # log sum_i W_i G_i = log mean_i(w_i G_i) + log N, with sum_i w_i = 1.
    increment = log_mean + math.log(log_weights.shape[0])
    valid &= total > 0
    new = jnp.log(scaled / total)
    new = jnp.where(valid, new, jnp.nan)
    # -inf only when every weight is zero; a NaN or +inf potential is NaN
    # even when it leaves no finite weight (all NaN maps to total 0 above).
    increment = jnp.where(bad_potential | ~(valid | (total <= 0)), jnp.nan, increment)
    return new, increment, ess, valid


def init(key: PRNGKey, model: FeynmanKac, num_particles: int) -> tuple[State, Info]:
    """Draws ``x_0 ~ M_0`` and weights it by ``G_0``.

    Args:
      key: a PRNG key.
      model: the :class:`FeynmanKac` model.
      num_particles: N, a Python int.

    Returns:
      ``(state, info)`` at t = 0 (``info.resampled`` is False).

    Raises:
      ValueError: ``num_particles`` not a positive int; ``model.init`` or
        ``model.initial_log_potential`` returning the wrong shape.
    """
    if not isinstance(num_particles, (int, np.integer)) or num_particles < 1:
        raise ValueError(f"num_particles must be a positive int, got {num_particles!r}")
    particles = model.init(key, int(num_particles))
    if _num_particles(particles, "model.init(...)") != num_particles:
        raise ValueError(
            f"model.init must return {num_particles} particles, got leading axis "
            f"{_num_particles(particles)}"
        )
    if model.initial_log_potential is None:
        log_g = jnp.zeros((num_particles,), jnp.result_type(float))
    else:
        log_g = _check_log_potential(
            model.initial_log_potential(particles),
            num_particles,
            "model.initial_log_potential",
        )
    uniform = jnp.full((num_particles,), -math.log(num_particles), log_g.dtype)
    log_weights, increment, ess, valid = _reweight(uniform, log_g)
    state = State(particles, log_weights, increment)
    return state, Info(ess, jnp.bool_(False), increment, valid)


def _check_ess_threshold(ess_threshold: Any) -> None:
    # `not >= 0` also rejects NaN, which would silently mean "never resample".
    if not isinstance(ess_threshold, (int, float)) or not ess_threshold >= 0:
        raise ValueError(f"ess_threshold must be a float >= 0, got {ess_threshold!r}")


def _resample(
    key: PRNGKey,
    state: State,
    scheme: str | resampling.Scheme,
    ess_threshold: float,
    num_ancestors: int | None,
) -> tuple[ArrayTree, Array, Array]:
    """The particles to move, their normalised log-weights over the N particles
    of the step's output, and whether resampling happened.

    An invalid state (NaN log-weights) stays invalid: NaN weights, no resampling.
    """
    num_particles = state.log_weights.shape[0]
    bad = jnp.isnan(state.log_weights).any()
    uniform = jnp.full_like(state.log_weights, -math.log(num_particles))
    if num_ancestors is not None:
        # Waste-free: always draws num_ancestors ancestors; mutate maps them to N.
        ancestors, info = resampling.resample(
            key, jnp.where(bad, 0.0, state.log_weights), num_ancestors, scheme
        )
        valid = info.valid & ~bad
        safe = jnp.maximum(ancestors, 0)
        particles = jax.tree.map(lambda x: sharding.gather_batch(x, safe), state.particles)
        return particles, jnp.where(valid, uniform, jnp.nan), valid
    if ess_threshold <= 0.0:
        return state.particles, state.log_weights, jnp.bool_(False)
    fraction = jnp.inf if ess_threshold >= 1.0 else ess_threshold
    # A bad state gets threshold 0: never resampled, its NaN weights kept.
    particles, log_weights, resampled = resampling.resample_if(
        key,
        jnp.where(bad, 0.0, state.log_weights),
        state.particles,
        jnp.where(bad, 0.0, fraction),
        scheme,
    )
    # Not resampled: the stored (normalised) weights, or NaN if the scheme
    # rejected them; resampled: uniform.
    kept = jnp.where(bad, state.log_weights, log_weights)
    return particles, jnp.where(resampled, uniform, kept), resampled


def step(
    key: PRNGKey,
    state: State,
    model: FeynmanKac,
    t: Any,
    *,
    scheme: str | resampling.Scheme = "systematic",
    ess_threshold: float = 0.5,
    num_ancestors: int | None = None,
) -> tuple[State, Info]:
    """One SMC step: resample if the ESS is low, mutate, reweight.

    Args:
      key: a PRNG key.
      state: the current :class:`State`.
      model: the :class:`FeynmanKac` model.
      t: the step input passed to ``model.mutate`` and
        ``model.log_potential``.
      scheme: a resampling scheme name or function
        (:data:`jaxsampling.kernels.resampling.SCHEMES`).
      ess_threshold: resample when ``ESS < ess_threshold * N``; >= 1 means
        every step, 0 never. A Python float.
      num_ancestors: waste-free SMC: resample this many ancestors at every
        step and let ``model.mutate`` map them back to N particles.

    Returns:
      ``(state, info)``.

    Raises:
      ValueError: ``ess_threshold`` not a float >= 0; ``model.mutate``
        changing the number of particles (other than the waste-free
        ``num_ancestors -> N``), or
        ``model.log_potential`` returning the wrong shape or dtype.
    """
    _check_ess_threshold(ess_threshold)
    num_particles = state.log_weights.shape[0]
    resample_key, mutate_key = jax.random.split(key)
    previous, log_weights, resampled = _resample(
        resample_key, state, scheme, ess_threshold, num_ancestors
    )
    particles = model.mutate(mutate_key, t, previous)
    if _num_particles(particles, "model.mutate(...)") != num_particles:
        raise ValueError(
            f"model.mutate must return {num_particles} particles, got leading axis "
            f"{_num_particles(particles)}"
        )
    log_g = _check_log_potential(
        model.log_potential(t, previous, particles), num_particles, "model.log_potential"
    )
    new_log_weights, increment, ess, valid = _reweight(log_weights, log_g)
    state = State(particles, new_log_weights, state.log_normalizer + increment)
    return state, Info(ess, resampled, increment, valid)


def _raise_if_invalid(info: Info) -> None:
    valid = info.valid
    if resampling._is_tracer(valid):
        return
    valid = np.asarray(valid)
    if not valid.all():
        t = int(np.argmin(valid.reshape(valid.shape[0], -1).all(axis=1)))
        raise ValueError(
            f"SMC step t={t}: a log-potential was NaN or +inf, or every particle "
            "had weight zero (Info.valid is False from there on)"
        )


def run(
    key: PRNGKey,
    model: FeynmanKac,
    num_particles: int,
    num_steps: int,
    *,
    scheme: str | resampling.Scheme = "systematic",
    ess_threshold: float = 0.5,
    track: Callable[[ArrayTree, Array], ArrayTree] | None = None,
) -> tuple[State, Info, ArrayTree]:
    """Runs ``num_steps`` SMC steps after :func:`init`, in one ``lax.scan``.

    The step inputs are the int32 indices ``t = 1, ..., num_steps``.

    Args:
      key: a PRNG key.
      model: the :class:`FeynmanKac` model.
      num_particles: N, a Python int.
      num_steps: T, a Python int (0 runs only :func:`init`).
      scheme: resampling scheme name or function.
      ess_threshold: resample when ``ESS < ess_threshold * N``; >= 1 means
        every step, 0 never.
      track: optional ``(particles, weights) -> pytree`` evaluated after
        every step with the normalised weights (e.g. a filtering mean).

    Returns:
      ``(state, info, tracked)``: the final :class:`State`; an
      :class:`Info` whose fields have leading axis ``T + 1`` (t = 0 first);
      the stacked ``track`` outputs (``None`` without ``track``).

    Raises:
      ValueError: bad sizes or model outputs (at trace time); with a
        concrete result, an invalid step (NaN or ``+inf`` log-potential, or
        every weight zero).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxsampling.kernels import smc
      >>> model = smc.FeynmanKac(
      ...     init=lambda key, n: jax.random.normal(key, (n,)),
      ...     mutate=lambda key, t, x: x + jax.random.normal(key, x.shape),
      ...     log_potential=lambda t, prev, x: -0.5 * x**2)
      >>> state, info, _ = smc.run(jax.random.key(0), model, 1000, 5)
      >>> info.ess.shape, bool(info.valid.all())
      ((6,), True)
    """
    if not isinstance(num_steps, (int, np.integer)) or num_steps < 0:
        raise ValueError(f"num_steps must be a non-negative int, got {num_steps!r}")
    _check_ess_threshold(ess_threshold)
    resampling.get_scheme(scheme)
    init_key, steps_key = jax.random.split(key)
    state, info0 = init(init_key, model, num_particles)

    def tracked(state: State) -> ArrayTree:
        if track is None:
            return None
        return track(state.particles, jnp.exp(state.log_weights))

    def body(state: State, t: Array) -> tuple[State, tuple[Info, ArrayTree]]:
        state, info = step(
            jax.random.fold_in(steps_key, t),
            state,
            model,
            t,
            scheme=scheme,
            ess_threshold=ess_threshold,
        )
        return state, (info, tracked(state))

    first = tracked(state)
    state, (infos, rest) = jax.lax.scan(
        body, state, jnp.arange(1, num_steps + 1, dtype=jnp.int32)
    )
    stack = lambda a, b: jnp.concatenate([jnp.asarray(a)[None], b])
    infos = jax.tree.map(stack, info0, infos)
    tracked_all = None if track is None else jax.tree.map(stack, first, rest)
    _raise_if_invalid(infos)
    return state, infos, tracked_all
