"""Metropolis chains for DPPs on many items: add-delete (L-ensemble) and swap (k-DPP).

The exact samplers of this package need the kernel's eigendecomposition,
``O(N^3)`` once. When ``N`` is too large for that, these chains sample
approximately with ``O(max_size^2)`` work a step and never look at more than
one row of ``L`` at a time.

**Add-delete chain** (L-ensemble, ``P(S) = det(L_S) / det(I + L)``): pick an
item ``i`` uniformly among the ``N``; propose ``S' = S xor {i}`` (add ``i`` if
it is out, remove it if it is in) and accept with probability

    min(1, det(L_S') / det(L_S)).

The proposal is symmetric, so the chain is reversible with respect to the DPP.

**Swap (basis-exchange) chain** (k-DPP, ``P(S) propto det(L_S)``, ``|S| = k``):
pick a uniform item ``i`` in ``S`` and a uniform item ``j`` outside; propose
``S' = S - {i} + {j}`` and accept with probability
``min(1, det(L_S') / det(L_S))``. The proposal probability ``1 / (k (N - k))``
is the same both ways, so the chain is reversible with respect to the k-DPP.

**Determinant ratios.** The state keeps ``A = (L_S)^{-1}`` in a static
``max_size x max_size`` array (``k x k`` for the k-DPP), indexed by *slots*:
slot ``p`` holds an item of ``S`` or is free (``-1``, identity row and
column). With ``b = L[j, S]`` (zero on free slots):

* adding ``j``: ``det(L_{S+j}) / det(L_S) = L_jj - b^T A b`` (the Schur
  complement ``s``); ``A`` gets a rank-one update with ``v = A b``;
* removing the item in slot ``p``: ``det(L_{S-i}) / det(L_S) = A_pp``;
  ``A <- A - A_{:p} A_{p:} / A_pp``;
* swapping: the product of the two, ``A_pp * s`` with ``s`` computed against
  the updated ``A``.

So a step costs ``O(max_size^2)`` flops (two matrix-vector products and a
rank-one update), plus a gather of ``max_size`` entries of one row of ``L``
and, for the swap chain, a sort of the ``k`` slot indices to pick the
uniform out-item; the membership vector is written in place, so the cost
does not grow with ``N``. Rank-one updates accumulate round-off, so :func:`run`
recomputes ``A`` and ``log det(L_S)`` from a Cholesky factorisation of the
current minor (:func:`refresh`, ``O(max_size^3)``) every ``refresh_every``
steps (default ``max(256, max_size)``, which keeps the amortised cost at
``O(max_size^2)`` a step).

**Capacity.** The add-delete state has a static ``max_size``; an addition
proposed at ``|S| = max_size`` is rejected and flagged
(``Info.at_capacity``). The chain then samples the DPP *conditioned on*
``|S| <= max_size``, which is the DPP itself when ``max_size`` is at least
the rank of ``L`` and differs from it by ``P(|S| > max_size)`` in total
variation otherwise (choose ``max_size`` well above ``E|S| = tr K``; with a
spectrum at hand, :func:`~.spectral.max_size_for` gives one).

**Many chains.** A chain is a pure function of its key and state: run many
with ``jax.vmap`` over keys and states (``L`` shared), and shard the chain
axis over a mesh; chains do not communicate, so no collective is added
(``L`` is read replicated). Memory is ``O(N + max_size^2)`` a chain.

**Mixing.** These are approximate samplers: after ``t`` steps the law of the
state is close to the target only once ``t`` exceeds the mixing time. For
the swap chain on a k-DPP (a homogeneous strongly Rayleigh measure),
Anari, Oveis Gharan & Rezaei (2016) bound the mixing time by
``O(N k log(1 / (eps P(S_0))))``; Li, Jegelka & Sra (2016) give polynomial
bounds, again with a ``log(1 / (eps P(S_0)))`` factor, for add-delete chains
on DPPs. The bounds are worst-case and depend on the start through
``log 1 / P(S_0)`` (large for a start with a tiny ``det(L_{S_0})``); they do
not certify a given run. Start several chains from different states, discard
a burn-in, and check that statistics agree across chains (the tests here
compare the chains' law with the exact one on small ``N``).

**Numerics.** Ratios of determinants are computed in the dtype of ``L``.
float32 is fine for well-conditioned minors; use float64
(``jax_enable_x64``) when ``L_S`` can be nearly singular (for example a
smooth kernel with ``max_size`` near its numerical rank). A Schur complement
that round-off makes non-positive is a rejected proposal.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jaxsampling.kernels.dpp import mcmc
  >>> L = jnp.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 1.5]])
  >>> state = mcmc.init(L, max_size=3)                   # the empty set
  >>> state, info = mcmc.run(jax.random.key(1), state, L, 100)
  >>> info.accepted.shape, bool(state.size == state.members.sum())
  ((100,), True)
  >>> mcmc.init_k(L, k=2).slots                          # a greedy start
  Array([0, 2], dtype=int32)

  Many chains, each from its own key (shard ``keys`` to spread them over
  devices)::

    keys = jax.random.split(jax.random.key(0), 1000)
    final = jax.vmap(lambda k: mcmc.run(k, state, L, 5000)[0])(keys)
    final_k = jax.vmap(lambda k: mcmc.run_k(k, state_k, L, 5000)[0])(keys)

References:
  Anari, Oveis Gharan & Rezaei (2016), Monte Carlo Markov chain algorithms
  for sampling strongly Rayleigh distributions and determinantal point
  processes (COLT); Li, Jegelka & Sra (2016), Fast mixing Markov chains for
  strongly Rayleigh measures, DPPs, and constrained sampling (NeurIPS);
  Kulesza & Taskar (2012), Determinantal point processes for machine learning.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxsampling.kernels.dpp import _checks
from jaxsampling.kernels.dpp.chain_rule import PAD
from jaxsampling.types import Array, ArrayLike

__all__ = [
    "DEFAULT_REFRESH",
    "Info",
    "State",
    "init",
    "init_k",
    "refresh",
    "run",
    "run_k",
    "step",
    "step_k",
]

DEFAULT_REFRESH = 256
"""Default :func:`run` refresh period (at least ``max_size``)."""

#: Largest ``N`` for which :func:`init` checks that ``L`` is PSD by its
#: eigenvalues (float64 ``eigvalsh``); above it, only the diagonal and the
#: ``2 x 2`` minors are checked.
EIG_CHECK_MAX = 2048


class State(NamedTuple):
    """The current set of a chain and the inverse of its minor of ``L``.

    Attributes:
      members: whether each item is in the set.
      size: the number of items ``|S|``.
      slots: the items of ``S`` in slot order; ``-1`` marks a free slot
        (the k-DPP state has ``k`` slots, all full).
      inverse: ``(L_S)^{-1}`` in slot coordinates; identity rows and
        columns on free slots.
      log_det: ``log det(L_S)`` (0 for the empty set; ``-inf`` for a singular
        initial set and ``nan`` for one larger than ``max_size``, under ``jit``).
    """

    members: Array  # bool[N]
    size: Array  # int32[]
    slots: Array  # int32[max_size]
    inverse: Array  # float[max_size, max_size] (dtype of L)
    log_det: Array  # float[] (dtype of L)


class Info(NamedTuple):
    """What one step proposed and whether it was accepted.

    Attributes:
      accepted: the proposal was accepted.
      acceptance_prob: ``min(1, ratio)``, 0 when ``ratio <= 0`` or is NaN.
      ratio: ``det(L_S') / det(L_S)`` of the proposal (0 for an addition at
        capacity). A negative value beyond round-off, or NaN, means ``L`` is
        not PSD or the state is corrupt; such proposals are rejected.
      removed: the item proposed for removal, or ``-1``.
      added: the item proposed for addition, or ``-1``.
      at_capacity: an addition was proposed with ``|S| = max_size`` (rejected).
    """

    accepted: Array  # bool[]
    acceptance_prob: Array  # float[] (dtype of L)
    ratio: Array  # float[] (dtype of L)
    removed: Array  # int32[]
    added: Array  # int32[]
    at_capacity: Array  # bool[]


# ----------------------------------------------------------------------------
# Argument checks.
# ----------------------------------------------------------------------------


def _check_kernel(L: ArrayLike) -> Array:
    """Square, floating, finite, symmetric and (concrete) PSD to round-off."""
    L = _checks.check_square_kernel(L, "L")
    if _checks.is_tracer(L):
        return L
    m = np.asarray(L, dtype=np.float64)
    n = m.shape[0]
    scale = max(float(np.abs(m).max()), np.finfo(np.float64).tiny)
    tol = _checks.tolerance(L.dtype, n) * scale
    d = np.diag(m)
    if d.min() < -tol:
        i = int(np.argmin(d))
        raise ValueError(
            f"L is not positive semi-definite: L[{i}, {i}] = {d[i]:.3g} < 0"
        )
    if n <= EIG_CHECK_MAX:
        smallest = float(np.linalg.eigvalsh(m)[0])
        if smallest < -tol:
            raise ValueError(
                f"L is not positive semi-definite: smallest eigenvalue {smallest:.3g}"
            )
        return L
    root = np.sqrt(np.maximum(d, 0))
    for start in range(0, n, 1024):  # 2 x 2 minors, |L_ij| <= sqrt(L_ii L_jj)
        rows = slice(start, start + 1024)
        block = np.abs(m[rows]) - np.outer(root[rows], root)
        if block.max() > tol:
            i, j = np.unravel_index(int(np.argmax(block)), block.shape)
            raise ValueError(
                f"L is not positive semi-definite: |L[{start + i}, {j}]| > "
                f"sqrt(L[{start + i}, {start + i}] L[{j}, {j}])"
            )
    return L


def _check_step_args(state: Any, L: ArrayLike) -> Array:
    """Trace-time checks of a step's arguments (shapes and dtypes only)."""
    if not isinstance(state, State):
        raise ValueError(
            "state must be a dpp.mcmc.State (from init or init_k), got "
            f"{type(state).__name__}"
        )
    L = jnp.asarray(L)
    n = state.members.shape[0]
    if L.shape != (n, n):
        raise ValueError(
            f"L must have shape ({n}, {n}) to match the state, got {L.shape}"
        )
    if L.dtype != state.inverse.dtype:
        raise ValueError(
            f"L has dtype {L.dtype} but the state was built for {state.inverse.dtype}"
        )
    return L


def _has_free_slots(state: State) -> bool:
    """With a concrete state: whether a slot is free (an add-delete state)."""
    slots = state.slots
    return not _checks.is_tracer(slots) and bool((np.asarray(slots) == PAD).any())


def _key(key: Any) -> Array:
    _checks.check_key(key)
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    return key if typed else jax.random.wrap_key_data(key)


def _members(initial: ArrayLike | None, n: int) -> Array:
    """``bool[N]`` from ``None`` (empty), a membership vector or item indices."""
    if initial is None:
        return jnp.zeros(n, bool)
    x = jnp.asarray(initial)
    if x.dtype == jnp.bool_:
        if x.shape != (n,):
            raise ValueError(
                f"initial as a membership vector must have shape ({n},), got {x.shape}"
            )
        return x
    if x.ndim != 1 or not jnp.issubdtype(x.dtype, jnp.integer):
        raise ValueError(
            "initial must be a bool[N] membership vector or a 1-D integer array of "
            f"items, got shape {x.shape} and dtype {x.dtype}"
        )
    if not _checks.is_tracer(x):
        items = np.asarray(x)
        items = items[items != PAD]
        if ((items < 0) | (items >= n)).any():
            raise ValueError(
                f"initial has items outside [0, {n}) other than the padding -1"
            )
        if np.unique(items).size != items.size:
            raise ValueError("initial has repeated items")
    idx = jnp.where(x == PAD, n, x)
    return jnp.zeros(n, bool).at[idx].set(True, mode="drop")


# ----------------------------------------------------------------------------
# The inverse of the minor and its updates.
# ----------------------------------------------------------------------------


# Gathers. A chain vmapped over a sharded chain axis on an explicit mesh reads
# the shared L (and a start state closed over) with per-chain indices; the
# gather's output sharding is then ambiguous to JAX, so it is given: the
# per-chain sharding of the index (vmap adds the chain axis). Elsewhere these
# are plain indexing.


def _sharding(index: Array) -> Any:
    return jax.typeof(index).sharding


def _at(x: Array, i: Array) -> Array:
    """``x[i]`` for a scalar index ``i`` along the leading axis."""
    i = jnp.asarray(i)
    return x.at[i[None]].get(out_sharding=_sharding(i))[0]


def _entry(M: Array, i: Array, j: Array) -> Array:
    """``M[i, j]`` for scalar indices."""
    i, j = jnp.asarray(i), jnp.asarray(j)
    return M.at[i, j[None]].get(out_sharding=_sharding(i))[0]


def _column(M: Array, j: Array) -> Array:
    """``M[:, j]`` for a scalar index."""
    j = jnp.asarray(j)
    return M.at[:, j[None]].get(out_sharding=_sharding(j))[:, 0]


@jax.jit
def _factor(L: Array, slots: Array) -> tuple[Array, Array, Array]:
    """``(L_S)^{-1}`` in slot coordinates and ``log det(L_S)`` by Cholesky.

    Returns the inverse, the log-determinant and whether the minor was
    positive definite (both finite).
    """
    m = slots.shape[0]
    eye = jnp.eye(m, dtype=L.dtype)
    used = slots != PAD
    safe = jnp.where(used, slots, 0)
    block = L.at[safe[:, None], safe[None, :]].get(out_sharding=_sharding(safe))
    minor = jnp.where(used[:, None] & used[None, :], block, eye)
    chol = jnp.linalg.cholesky(minor)
    inverse = jax.scipy.linalg.cho_solve((chol, True), eye)
    inverse = (inverse + inverse.T) / 2
    log_det = 2 * jnp.sum(jnp.log(jnp.diagonal(chol)))
    ok = jnp.isfinite(log_det) & jnp.all(jnp.isfinite(inverse))
    return inverse, log_det, ok


def _cross(L: Array, item: Array, slots: Array) -> Array:
    """``L[item, slots]`` with zeros on free slots."""
    used = slots != PAD
    row = L.at[item, jnp.where(used, slots, 0)].get(out_sharding=_sharding(item))
    return jnp.where(used, row, 0)


def _removed(A: Array, p: Array) -> Array:
    """Inverse after removing the item of slot ``p`` (slot ``p`` becomes free)."""
    a = _column(A, p)
    e = jnp.arange(A.shape[0]) == p
    eye = jnp.eye(A.shape[0], dtype=A.dtype)
    a_pp = jnp.sum(jnp.where(e, a, 0))
    return jnp.where(e[:, None] | e[None, :], eye, A - jnp.outer(a, a) / a_pp)


def _added(A: Array, u: Array, schur: Array, q: Array) -> Array:
    """Inverse after adding an item into free slot ``q``; ``u = A b``, ``u_q = 0``."""
    e = (jnp.arange(A.shape[0]) == q).astype(A.dtype)
    v = u - e
    return A + jnp.outer(v, v) / schur - jnp.outer(e, e)


def _toggle(state: State, L: Array, item: Array) -> tuple[Array, Array, State]:
    """The add-delete proposal that toggles ``item``: ``(ratio, at_capacity, S')``."""
    slots, A = state.slots, state.inverse
    member = _at(state.members, item)
    p = jnp.argmax(slots == item)  # its slot, if it is in S
    q = jnp.argmax(slots == PAD)  # the first free slot
    at_capacity = ~member & (state.size >= slots.shape[0])
    b = _cross(L, item, slots)
    u = A @ b
    schur = _entry(L, item, item) - b @ u
    a_pp = jnp.sum(jnp.where(jnp.arange(slots.shape[0]) == p, jnp.diagonal(A), 0))
    ratio = jnp.where(member, a_pp, jnp.where(at_capacity, 0, schur))
    slot = jnp.where(member, p, q)
    proposal = State(
        members=state.members.at[item].set(~member),
        size=state.size + jnp.where(member, -1, 1).astype(jnp.int32),
        slots=slots.at[slot].set(jnp.where(member, PAD, item).astype(jnp.int32)),
        inverse=jnp.where(member, _removed(A, p), _added(A, u, schur, q)),
        log_det=state.log_det + jnp.log(ratio),
    )
    return ratio, at_capacity, proposal


def _swap(state: State, L: Array, slot: Array, item: Array) -> tuple[Array, State]:
    """The swap proposal: the item of ``slot`` leaves, ``item`` (outside) enters."""
    A = state.inverse
    here = jnp.arange(A.shape[0]) == slot
    a_pp = jnp.sum(jnp.where(here, jnp.diagonal(A), 0))
    leaving = jnp.sum(jnp.where(here, state.slots, 0))
    A_del = _removed(A, slot)
    slots_del = state.slots.at[slot].set(PAD)
    b = _cross(L, item, slots_del)
    u = A_del @ b
    schur = _entry(L, item, item) - b @ u
    ratio = a_pp * schur
    proposal = State(
        members=state.members.at[leaving].set(False).at[item].set(True),
        size=state.size,
        slots=state.slots.at[slot].set(item.astype(jnp.int32)),
        inverse=_added(A_del, u, schur, slot),
        log_det=state.log_det + jnp.log(ratio),
    )
    return ratio, proposal


def _nth_outside(slots: Array, r: Array) -> Array:
    """The ``r``-th item (0-based, increasing order) outside the full ``slots``.

    With the members sorted, ``s_t - t`` items lie outside below ``s_t``, so
    the answer is ``r`` plus the number of members with ``s_t - t <= r``.
    """
    s = jnp.sort(slots)
    return (r + jnp.sum(s - jnp.arange(s.shape[0]) <= r)).astype(jnp.int32)


def _accept(
    u: Array,
    live: Array,
    state: State,
    proposal: State,
    ratio: Array,
    members: Callable[[Array], Array],
    removed: Array,
    added: Array,
    at_capacity: Array,
) -> tuple[State, Info]:
    """Metropolis acceptance; ``live=False`` forces a rejection (padding steps).

    The ``max_size``-sized fields are selected whole (``O(max_size^2)``, like
    the update); the ``N``-sized membership vector is written in place at the
    one or two items that change (``members(accepted)``), so a step costs
    nothing in ``N``.
    """
    accepted = (u < ratio) & live  # False for a NaN ratio
    new = State(
        members=members(accepted),
        size=jnp.where(accepted, proposal.size, state.size),
        slots=jnp.where(accepted, proposal.slots, state.slots),
        inverse=jnp.where(accepted, proposal.inverse, state.inverse),
        log_det=jnp.where(accepted, proposal.log_det, state.log_det),
    )
    prob = jnp.where(ratio > 0, jnp.minimum(ratio, 1), 0).astype(ratio.dtype)
    info = Info(
        accepted=accepted,
        acceptance_prob=prob,
        ratio=ratio,
        removed=jnp.asarray(removed, jnp.int32),
        added=jnp.asarray(added, jnp.int32),
        at_capacity=jnp.asarray(at_capacity, bool),
    )
    return new, info


# ----------------------------------------------------------------------------
# Public API.
# ----------------------------------------------------------------------------


def init(L: ArrayLike, initial: ArrayLike | None = None, *, max_size: int) -> State:
    """The add-delete chain's state at ``initial`` (default: the empty set).

    Args:
      L: ``(N, N)`` symmetric PSD L-ensemble kernel.
      initial: ``None`` (the empty set), a ``bool[N]`` membership vector, or
        a 1-D integer array of distinct items (``-1`` entries are ignored).
      max_size: static capacity: the largest set the chain can hold (see
        the module docstring, "Capacity"); ``1 <= max_size <= N``.

    Returns:
      A :class:`State` with ``max_size`` slots. Cost: ``O(max_size^3)``.

    Raises:
      ValueError: ``L`` not square, not floating, non-finite, or (concrete)
        not symmetric or not PSD (eigenvalues for ``N <= EIG_CHECK_MAX``,
        diagonal and ``2 x 2`` minors above); ``max_size`` not an int in
        ``[1, N]``; ``initial`` of the wrong shape or dtype, or (concrete)
        with items out of range, repeated, more than ``max_size`` of them,
        or ``det(L_S) = 0``.
    """
    L = _check_kernel(L)
    n = L.shape[0]
    max_size = _checks.check_int(max_size, "max_size")
    if max_size > n:
        raise ValueError(f"max_size must be at most N = {n}, got {max_size}")
    members = _members(initial, n)
    if not _checks.is_tracer(members) and int(np.asarray(members).sum()) > max_size:
        count = int(np.asarray(members).sum())
        raise ValueError(f"initial has {count} items, more than max_size = {max_size}")
    state = _from_members(L, members, max_size)
    if not _checks.is_tracer(state.log_det) and not np.isfinite(float(state.log_det)):
        raise ValueError(
            "initial: det(L_S) = 0 for the initial set (its minor of L is singular "
            "to working precision); start from a set with det(L_S) > 0, such as "
            "the empty set"
        )
    return state


# The state builders are jitted so that an eager init compiles once per shape
# instead of dispatching a few dozen ops one by one.


@functools.partial(jax.jit, static_argnums=2)
def _from_members(L: Array, members: Array, num_slots: int) -> State:
    """The state of a membership vector, in ``num_slots`` slots (items in order)."""
    size = jnp.sum(members, dtype=jnp.int32)
    slots = jnp.nonzero(members, size=num_slots, fill_value=PAD)[0].astype(jnp.int32)
    inverse, log_det, ok = _factor(L, slots)
    log_det = jnp.where(ok, log_det, -jnp.inf)
    log_det = jnp.where(size > num_slots, jnp.nan, log_det).astype(L.dtype)
    return State(members, size, slots, inverse, log_det)


@jax.jit
def _from_slots(L: Array, slots: Array) -> State:
    """The state with ``slots`` (all full; ``log_det = -inf`` on a repeat or a pad)."""
    n = L.shape[0]
    items = jnp.where(slots == PAD, n, slots)
    members = jnp.zeros(n, bool).at[items].set(True, mode="drop")
    # The size comes from the data, not a constant: a constant carry has no
    # mesh, and batching it over a sharded chain axis (vmap + scan on an
    # explicit mesh) fails.
    size = jnp.sum(members, dtype=jnp.int32)
    inverse, log_det, ok = _factor(L, slots)
    full = size == slots.shape[0]
    log_det = jnp.where(ok & full, log_det, -jnp.inf).astype(L.dtype)
    return State(members, size, slots, inverse, log_det)


@functools.partial(jax.jit, static_argnums=1)
def _greedy(L: Array, k: int) -> Array:
    """``k`` items chosen greedily by pivoted Cholesky (largest residual first).

    ``O(N k^2)``; the set has ``det(L_S) > 0`` whenever ``k <= rank(L)``.
    """
    n = L.shape[0]

    def body(t, carry):
        residual, rows, items = carry
        j = jnp.argmax(residual).astype(jnp.int32)
        c = (_at(L, j) - rows.T @ _column(rows, j)) / jnp.sqrt(jnp.max(residual))
        residual = (residual - c * c).at[j].set(-jnp.inf)
        return residual, rows.at[t].set(c), items.at[t].set(j)

    carry = (jnp.diagonal(L), jnp.zeros((k, n), L.dtype), jnp.zeros(k, jnp.int32))
    return lax.fori_loop(0, k, body, carry)[2]


def init_k(
    L: ArrayLike, initial: ArrayLike | None = None, *, k: int | None = None
) -> State:
    """The swap chain's state for the k-DPP of ``L``.

    Args:
      L: ``(N, N)`` symmetric PSD L-ensemble kernel.
      initial: ``None`` (a greedy start: ``k`` items picked by pivoted
        Cholesky, ``O(N k^2)``, deterministic), a 1-D integer array of ``k``
        distinct items, or a ``bool[N]`` membership vector with ``k`` items.
      k: static set size; optional when ``initial`` fixes it (an integer
        array's length, or a concrete membership vector's count).

    Returns:
      A :class:`State` with ``k`` full slots. Cost: ``O(k^3)`` (plus the
      greedy start).

    Raises:
      ValueError: ``L`` as in :func:`init`; ``k`` missing, not an int, or
        outside ``[1, N]``, or (greedy start, concrete) larger than the
        numerical rank of ``L``; ``initial`` of the wrong shape or dtype, not
        of size ``k``, or (concrete) with items out of range, repeated, or
        ``det(L_S) = 0``.
    """
    L = _check_kernel(L)
    n = L.shape[0]
    if initial is None:
        if k is None:
            raise ValueError("k is required when initial is None")
    else:
        x = jnp.asarray(initial)
        members = _members(x, n)
        if x.dtype == jnp.bool_:
            count = None if _checks.is_tracer(x) else int(np.asarray(x).sum())
        else:
            if not _checks.is_tracer(x) and bool((np.asarray(x) == PAD).any()):
                raise ValueError("initial must list k items, without -1 padding")
            count = x.shape[0]
        if k is None:
            if count is None:
                raise ValueError(
                    "k is required with a traced membership vector as initial"
                )
            k = count
        elif count is not None and count != k:
            raise ValueError(f"initial has {count} items but k = {k}")
    k = _checks.check_int(k, "k")
    if k > n:
        raise ValueError(f"k must be at most N = {n}, got {k}")
    if initial is None:
        state = _from_slots(L, _greedy(L, k))
    elif x.dtype == jnp.bool_:
        state = _from_members(L, members, k)
    else:
        state = _from_slots(L, x.astype(jnp.int32))
    if not _checks.is_tracer(state.log_det) and not np.isfinite(float(state.log_det)):
        if initial is None:
            raise ValueError(
                f"k = {k} exceeds the numerical rank of L: no {k} items with "
                "det(L_S) > 0 were found (a k-DPP needs k <= rank(L))"
            )
        raise ValueError(
            "initial: det(L_S) = 0 for the initial set (its minor of L is singular "
            "to working precision); start from a set with det(L_S) > 0 (initial=None "
            "picks one greedily)"
        )
    return state


def refresh(state: State, L: ArrayLike) -> State:
    """Recomputes ``inverse`` and ``log_det`` from ``L_S`` by Cholesky.

    ``O(max_size^3)``. Clears the round-off that rank-one updates accumulate;
    :func:`run` and :func:`run_k` call it every ``refresh_every`` steps. If the
    minor is not numerically positive definite, the state is returned unchanged.
    """
    L = _check_step_args(state, L)
    inverse, log_det, ok = _factor(L, state.slots)
    return state._replace(
        inverse=jnp.where(ok, inverse, state.inverse),
        log_det=jnp.where(ok, log_det, state.log_det),
    )


def _words(key: Any) -> Array:
    """The step's random bits: four ``uint32`` words from one threefry call.

    One call instead of ``split`` + ``randint`` + ``uniform`` (five threefry
    hashes): under ``vmap`` each hash costs seconds of XLA compile time on CPU.
    """
    return jax.random.bits(_key(key), (4,), jnp.uint32)


def _below(word: Array, span: int) -> Array:
    """An integer in ``[0, span)`` from one random word: ``word mod span``.

    Each value has probability ``floor(2^32 / span) / 2^32`` or one more
    ``2^-32``: a relative deviation below ``span / 2^32`` from uniform.
    """
    return (word % jnp.uint32(span)).astype(jnp.int32)


def _uniform(w0: Array, w1: Array, dtype: Any) -> Array:
    """A uniform in ``[0, 1)`` with the dtype's full mantissa (24 or 53 bits)."""
    if jnp.finfo(dtype).bits > 32:
        a = (w0 >> 5).astype(dtype)  # 27 bits
        b = (w1 >> 6).astype(dtype)  # 26 bits
        return (a * 2.0**26 + b) * 2.0**-53
    return ((w0 >> 8).astype(jnp.float32) * 2.0**-24).astype(dtype)


def step(key: Any, state: State, L: ArrayLike) -> tuple[State, Info]:
    """One add-delete Metropolis step for the L-ensemble ``P(S) propto det(L_S)``.

    Proposes toggling a uniform item, accepts with ``min(1, det(L_S') / det(L_S))``.
    ``O(max_size^2)``. The item is ``word mod N`` of a random 32-bit word
    (each item has probability within ``2^-32`` of ``1 / N``); the proposal of
    a toggle is the same both ways whatever these probabilities, so detailed
    balance is exact.

    Args:
      key: a PRNG key (typed or legacy ``uint32[2]``).
      state: from :func:`init` (or a previous step).
      L: the ``(N, N)`` kernel the state was built with (only shapes are
        checked here; :func:`init` checks the values).

    Returns:
      The new state and the step's :class:`Info`.
    """
    L = _check_step_args(state, L)
    return _add_delete_move(_words(key), state, L)


@jax.jit
def _add_delete_move(
    words: Array, state: State, L: Array, live: Array | bool = True
) -> tuple[State, Info]:
    item = _below(words[0], L.shape[0])
    ratio, at_capacity, proposal = _toggle(state, L, item)
    member = _at(state.members, item)
    u = _uniform(words[2], words[3], ratio.dtype)
    return _accept(
        u,
        live,
        state,
        proposal,
        ratio,
        members=lambda accepted: state.members.at[item].set(member ^ accepted),
        removed=jnp.where(member, item, PAD),
        added=jnp.where(member, PAD, item),
        at_capacity=at_capacity,
    )


def step_k(key: Any, state: State, L: ArrayLike) -> tuple[State, Info]:
    """One swap (basis-exchange) Metropolis step for the k-DPP of ``L``.

    Proposes replacing a uniform item of ``S`` by a uniform item outside,
    accepts with ``min(1, det(L_S') / det(L_S))``. ``O(k^2)`` plus a sort of
    the ``k`` slots. With ``k = N`` there is one set and the step is a null
    move. The two uniform draws use ``word mod k`` and ``word mod (N - k)``
    of random 32-bit words: the proposal is symmetric to within a relative
    ``N / 2^32``.

    Args:
      key: a PRNG key (typed or legacy ``uint32[2]``).
      state: from :func:`init_k` (every slot full).
      L: the ``(N, N)`` kernel the state was built with.

    Returns:
      The new state and the step's :class:`Info`.

    Raises:
      ValueError: (concrete state) a state with free slots (from :func:`init`).
    """
    L = _check_step_args(state, L)
    if _has_free_slots(state):
        raise ValueError("state has free slots: step_k needs a k-DPP state from init_k")
    return _swap_move(_words(key), state, L)


@jax.jit
def _swap_move(
    words: Array, state: State, L: Array, live: Array | bool = True
) -> tuple[State, Info]:
    n, k = L.shape[0], state.slots.shape[0]
    if k == n:
        one = jnp.ones((), state.inverse.dtype)
        pad = jnp.asarray(PAD, jnp.int32)
        return state, Info(jnp.asarray(True), one, one, pad, pad, jnp.asarray(False))
    slot = _below(words[0], k)
    item = _nth_outside(state.slots, _below(words[1], n - k))
    leaving = _at(state.slots, slot)
    ratio, proposal = _swap(state, L, slot, item)
    u = _uniform(words[2], words[3], ratio.dtype)
    return _accept(
        u,
        live,
        state,
        proposal,
        ratio,
        members=lambda accepted: (
            state.members.at[leaving].set(~accepted).at[item].set(accepted)
        ),
        removed=leaving,
        added=item,
        at_capacity=False,
    )


def _run(
    move: Callable[..., tuple[State, Info]],
    key: Any,
    state: State,
    L: ArrayLike,
    num_steps: int,
    refresh_every: int | None,
) -> tuple[State, Info]:
    """``num_steps`` moves: ``lax.scan`` over blocks of ``refresh_every`` steps.

    Each block draws its random words in one ``jax.random.bits`` call
    (``16 refresh_every`` bytes a chain), runs its steps and ends with
    :func:`refresh`. The last block is padded to full length with forced
    rejections (at most ``refresh_every - 1`` wasted steps, dropped from
    ``Info``), so the step appears once in the program (XLA compile time
    grows with every copy). A run of at most one block has no refresh
    unless it is exactly one block long.
    """
    L = _check_step_args(state, L)
    num_steps = _checks.check_int(num_steps, "num_steps")
    if refresh_every is None:
        refresh_every = max(DEFAULT_REFRESH, state.slots.shape[0])
    period = _checks.check_int(refresh_every, "refresh_every")
    key = _key(key)

    def words(key, steps):
        # A 1-D draw: 2-D shapes cost several times more XLA compile time.
        return jax.random.bits(key, (4 * steps,), jnp.uint32).reshape(steps, 4)

    if num_steps <= period:
        state, info = lax.scan(lambda s, w: move(w, s, L), state, words(key, num_steps))
        return (refresh(state, L) if num_steps == period else state), info
    blocks = -(-num_steps // period)

    def block(state, xs):
        key, first = xs
        live = first + jnp.arange(period) < num_steps
        state, info = lax.scan(
            lambda s, wl: move(wl[0], s, L, wl[1]), state, (words(key, period), live)
        )
        return refresh(state, L), info

    firsts = jnp.arange(blocks, dtype=jnp.int32) * period
    state, info = lax.scan(block, state, (jax.random.split(key, blocks), firsts))
    return state, jax.tree.map(
        lambda x: x.reshape(blocks * period, *x.shape[2:])[:num_steps], info
    )


def run(
    key: Any,
    state: State,
    L: ArrayLike,
    num_steps: int,
    *,
    refresh_every: int | None = None,
) -> tuple[State, Info]:
    """Runs the add-delete chain for ``num_steps`` steps (``lax.scan``).

    Args:
      key: a PRNG key. The steps' random words are drawn a block of
        ``refresh_every`` steps at a time (one ``jax.random.bits`` call per
        block), so a run is not the same sequence as :func:`step` called
        with split keys; both are exact Metropolis chains.
      state: from :func:`init`.
      L: the ``(N, N)`` kernel.
      num_steps: static number of steps.
      refresh_every: static period of :func:`refresh` (default
        ``max(DEFAULT_REFRESH, max_size)``).

    Returns:
      The final state and the :class:`Info` of every step (leading axis
      ``num_steps``). For many chains, ``jax.vmap`` over keys and states.

    A run longer than ``refresh_every`` is a ``lax.scan`` over blocks of
    ``refresh_every`` steps, each ending with :func:`refresh`; the last block
    is padded with forced rejections (at most ``refresh_every - 1`` steps of
    extra work, not in ``Info``) so that the step is compiled once.
    """
    return _run(_add_delete_move, key, state, L, num_steps, refresh_every)


def run_k(
    key: Any,
    state: State,
    L: ArrayLike,
    num_steps: int,
    *,
    refresh_every: int | None = None,
) -> tuple[State, Info]:
    """Runs the k-DPP swap chain for ``num_steps`` steps; as :func:`run`.

    Raises:
      ValueError: (concrete state) a state with free slots (from :func:`init`).
    """
    _check_step_args(state, L)
    if _has_free_slots(state):
        raise ValueError("state has free slots: run_k needs a k-DPP state from init_k")
    return _run(_swap_move, key, state, L, num_steps, refresh_every)
