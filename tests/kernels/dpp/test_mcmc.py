"""Metropolis chains for DPPs: exact laws, detailed balance, transforms, sharding.

* Law: many independent chains, each run past burn-in, land on each subset
  with the exact probability (``det(L_S) / det(I + L)``, the DPP conditioned
  on ``|S| <= max_size``, or ``det(L_S) / e_k``): chi-square on ``N <= 6``.
  The burn-in is checked on the exact transition matrix (built in numpy from
  the acceptance formula): the total-variation distance to the target after
  the burn-in is below ``1e-6``, far below what the chi-square test can see.
* Detailed balance, exactly (float64): the transition matrix is built from
  the kernel's own acceptance ratios for every (set, proposal) pair, and
  ``pi_S P(S, S') = pi_S' P(S', S)``; every proposed state's inverse and
  log-determinant match a direct computation.
* Round-off: rank-one updates over many steps, and the periodic refresh.
* jit equals eager, vmap equals a loop, no retrace, legacy keys.
* Chains sharded over the 8 devices (Explicit and Auto meshes) equal the
  unsharded chains and stay sharded.
* Bad input.
"""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxsampling import sharding, testing
from jaxsampling.kernels.dpp import mcmc

# ----------------------------------------------------------------------------
# Exact references (numpy, float64).
# ----------------------------------------------------------------------------


def _kernel(n: int, seed: int, scale: float = 1.5, ridge: float = 0.1) -> np.ndarray:
    """A full-rank PSD ``n x n`` kernel: ``scale X X^T / n + ridge I``."""
    X = np.random.default_rng(seed).standard_normal((n, n))
    return scale * X @ X.T / n + ridge * np.eye(n)


def _subsets(n, k=None, max_size=None):
    sizes = [k] if k is not None else range((n if max_size is None else max_size) + 1)
    return [s for r in sizes for s in itertools.combinations(range(n), r)]


def _det(L, s):
    return float(np.linalg.det(L[np.ix_(s, s)])) if s else 1.0


def _law(L, subsets):
    d = np.array([_det(L, s) for s in subsets])
    return d / d.sum()


def _add_delete_matrix(L, max_size):
    n = L.shape[0]
    subsets = _subsets(n, max_size=max_size)
    index = {s: a for a, s in enumerate(subsets)}
    d = np.array([_det(L, s) for s in subsets])
    T = np.zeros((len(subsets), len(subsets)))
    for a, s in enumerate(subsets):
        for i in range(n):
            b = index.get(tuple(sorted(set(s) ^ {i})))
            if b is not None:
                T[a, b] += min(1.0, d[b] / d[a]) / n
        T[a, a] = 1.0 - T[a].sum()
    return subsets, d / d.sum(), T


def _swap_matrix(L, k):
    n = L.shape[0]
    subsets = _subsets(n, k=k)
    index = {s: a for a, s in enumerate(subsets)}
    d = np.array([_det(L, s) for s in subsets])
    T = np.zeros((len(subsets), len(subsets)))
    for a, s in enumerate(subsets):
        for i in s:
            for j in sorted(set(range(n)) - set(s)):
                b = index[tuple(sorted(set(s) - {i} | {j}))]
                T[a, b] += min(1.0, d[b] / d[a]) / (k * (n - k))
        T[a, a] = 1.0 - T[a].sum()
    return subsets, d / d.sum(), T


def _tv_after(T, pi, start, steps):
    x = np.zeros(len(pi))
    x[start] = 1.0
    for _ in range(steps):
        x = x @ T
    return 0.5 * float(np.abs(x - pi).sum())


def _counts(members, subsets):
    index = {s: a for a, s in enumerate(subsets)}
    counts = np.zeros(len(subsets))
    for row in np.asarray(members):
        counts[index[tuple(np.flatnonzero(row))]] += 1
    return counts


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


@pytest.fixture(autouse=True)
def _fast_compile():
    """``jax_disable_most_optimizations`` in this file (restored after each test).

    Same math; XLA skips its expensive passes. The chains here run for
    milliseconds to a second and their programs take seconds to optimise
    (about half the time of this file without it).
    """
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", previous)


# ----------------------------------------------------------------------------
# Exact laws of many chains (float32, the default dtype).
# ----------------------------------------------------------------------------

CHAINS = 8000
BURN_IN = 100


@pytest.mark.parametrize("max_size", [5, pytest.param(2, marks=pytest.mark.slow)])
def test_add_delete_chains_follow_the_exact_law(max_size):
    # max_size = 5 = N: the DPP itself; max_size = 2: the DPP given |S| <= 2
    # (slow: the exact detailed-balance test below covers the capped chain).
    L = _kernel(5, seed=0)
    subsets, pi, T = _add_delete_matrix(L, max_size)
    assert _tv_after(T, pi, 0, BURN_IN) < 1e-6  # from the empty set
    Lj = jnp.asarray(L, jnp.float32)

    def chain(key):
        # Refreshed every 40 steps: two blocks, then a third padded with 20
        # forced rejections; the law checks that path too.
        start = mcmc.init(Lj, max_size=max_size)
        state, info = mcmc.run(key, start, Lj, BURN_IN, refresh_every=40)
        assert info.accepted.shape == (BURN_IN,)
        return state, info.at_capacity.any()

    keys = jax.random.split(jax.random.key(10 + max_size), CHAINS)
    states, capped = jax.jit(jax.vmap(chain))(keys)
    assert bool((states.size == states.members.sum(1)).all())
    testing.assert_chi_square(_counts(states.members, subsets), pi)
    assert bool(capped.any()) == (max_size < 5)


def test_swap_chains_follow_the_exact_k_dpp_law():
    L = _kernel(6, seed=1)
    k = 3
    subsets, pi, T = _swap_matrix(L, k)
    Lj = jnp.asarray(L, jnp.float32)
    start = mcmc.init_k(Lj, k=k)  # greedy
    s0 = subsets.index(tuple(sorted(np.asarray(start.slots).tolist())))
    assert _tv_after(T, pi, s0, BURN_IN) < 1e-6

    def chain(key):
        return mcmc.run_k(key, start, Lj, BURN_IN, refresh_every=30)[0]  # padded

    states = jax.jit(jax.vmap(chain))(jax.random.split(jax.random.key(20), CHAINS))
    assert bool((states.members.sum(1) == k).all())
    testing.assert_chi_square(_counts(states.members, subsets), pi)


# ----------------------------------------------------------------------------
# Detailed balance from the kernel's own acceptance ratios (float64).
# ----------------------------------------------------------------------------


def _check_reversible(pi, T):
    flow = pi[:, None] * T
    np.testing.assert_allclose(flow, flow.T, rtol=0, atol=1e-15)
    np.testing.assert_allclose(pi @ T, pi, rtol=0, atol=1e-14)
    assert (T >= 0).all()


def _check_proposal_state(L, proposal, s_new):
    """The proposed state's inverse, log-determinant and slots are right."""
    slots = np.asarray(proposal.slots)
    used = slots != -1
    assert sorted(slots[used].tolist()) == list(s_new)
    assert np.flatnonzero(np.asarray(proposal.members)).tolist() == list(s_new)
    A = np.asarray(proposal.inverse)
    if s_new:
        Ls = L[np.ix_(slots[used], slots[used])]
        inv = np.linalg.inv(Ls)
        np.testing.assert_allclose(A[np.ix_(used, used)], inv, rtol=1e-9, atol=1e-9)
        log_det = np.linalg.slogdet(Ls)[1]
        np.testing.assert_allclose(float(proposal.log_det), log_det, atol=1e-10)
    free = ~used
    np.testing.assert_array_equal(A[np.ix_(free, free)], np.eye(free.sum()))
    np.testing.assert_array_equal(A[np.ix_(free, used)], 0)


@pytest.mark.parametrize("max_size", [4, 2])
def test_add_delete_detailed_balance_exact(x64, max_size):
    L = _kernel(4, seed=2)
    n = L.shape[0]
    subsets, pi, _ = _add_delete_matrix(L, max_size)
    index = {s: a for a, s in enumerate(subsets)}
    pairs = [(s, i) for s in subsets for i in range(n)]
    members = np.zeros((len(pairs), n), bool)
    for row, (s, _) in enumerate(pairs):
        members[row, list(s)] = True
    items = jnp.asarray([i for _, i in pairs], jnp.int32)
    Lj = jnp.asarray(L)

    def propose(m, item):
        return mcmc._toggle(mcmc.init(Lj, m, max_size=max_size), Lj, item)

    propose = jax.jit(jax.vmap(propose))
    ratio, at_capacity, proposals = propose(jnp.asarray(members), items)
    ratio, at_capacity = np.asarray(ratio), np.asarray(at_capacity)
    T = np.zeros((len(subsets), len(subsets)))
    for row, (s, i) in enumerate(pairs):
        s_new = tuple(sorted(set(s) ^ {i}))
        full = i not in s and len(s) == max_size
        assert bool(at_capacity[row]) == full
        if full:
            assert ratio[row] == 0
            continue
        np.testing.assert_allclose(ratio[row], _det(L, s_new) / _det(L, s), rtol=1e-12)
        _check_proposal_state(L, jax.tree.map(lambda x: x[row], proposals), s_new)
        T[index[s], index[s_new]] += min(1.0, ratio[row]) / n
    T += np.diag(1.0 - T.sum(1))
    _check_reversible(pi, T)


def test_swap_detailed_balance_exact(x64):
    L = _kernel(5, seed=3)
    n, k = L.shape[0], 2
    subsets, pi, _ = _swap_matrix(L, k)
    index = {s: a for a, s in enumerate(subsets)}
    triples = [(s, p, r) for s in subsets for p in range(k) for r in range(n - k)]
    slots = jnp.asarray([s for s, _, _ in triples], jnp.int32)
    ps = jnp.asarray([p for _, p, _ in triples], jnp.int32)
    rs = jnp.asarray([r for _, _, r in triples], jnp.int32)
    Lj = jnp.asarray(L)

    def propose(s, p, r):
        state = mcmc.init_k(Lj, s)
        item = mcmc._nth_outside(state.slots, r)
        return item, *mcmc._swap(state, Lj, p, item)

    items, ratio, proposals = jax.jit(jax.vmap(propose))(slots, ps, rs)
    items, ratio = np.asarray(items), np.asarray(ratio)
    T = np.zeros((len(subsets), len(subsets)))
    for row, (s, p, r) in enumerate(triples):
        # The r-th item outside S, in increasing order: every out-item once.
        assert items[row] == sorted(set(range(n)) - set(s))[r]
        s_new = tuple(sorted(set(s) - {s[p]} | {int(items[row])}))
        np.testing.assert_allclose(ratio[row], _det(L, s_new) / _det(L, s), rtol=1e-12)
        _check_proposal_state(L, jax.tree.map(lambda x: x[row], proposals), s_new)
        T[index[s], index[s_new]] += min(1.0, ratio[row]) / (k * (n - k))
    T += np.diag(1.0 - T.sum(1))
    _check_reversible(pi, T)


# ----------------------------------------------------------------------------
# Round-off of the rank-one updates, the refresh, and Info.
# ----------------------------------------------------------------------------


def _check_state(L, state, rtol):
    slots = np.asarray(state.slots)
    used = slots != -1
    members = np.flatnonzero(np.asarray(state.members))
    assert np.array_equal(np.sort(slots[used]), members)
    assert int(state.size) == used.sum()
    if not used.any():
        assert float(state.log_det) == 0
        return
    Ls = np.asarray(L, np.float64)[np.ix_(slots[used], slots[used])]
    A = np.asarray(state.inverse, np.float64)[np.ix_(used, used)]
    inv = np.linalg.inv(Ls)
    assert np.abs(A - inv).max() <= rtol * np.abs(inv).max()
    log_det = np.linalg.slogdet(Ls)[1]
    np.testing.assert_allclose(float(state.log_det), log_det, rtol=rtol, atol=rtol)


@pytest.mark.slow
def test_long_chains_round_off_refresh_and_info(x64):
    # Add-delete: 2000 steps with no refresh; the updated inverse stays exact to
    # ~1e-10 in float64. Swap: 1100 steps refreshed every 200 (5 blocks, then
    # 100 steps). Info accounts for every change of the set.
    L = jnp.asarray(_kernel(30, seed=4, scale=3.0, ridge=0.05))
    start, start_k = mcmc.init(L, max_size=30), mcmc.init_k(L, k=8)

    def chains(key):
        key_a, key_k = jax.random.split(key)
        return (
            mcmc.run(key_a, start, L, 2000, refresh_every=10**6),
            mcmc.run_k(key_k, start_k, L, 1100, refresh_every=200),
        )

    (final, info), (final_k, info_k) = jax.jit(chains)(jax.random.key(3))
    _check_state(L, final, rtol=1e-9)
    _check_state(L, final_k, rtol=1e-9)
    accepted = np.asarray(info.accepted)
    added, removed = np.asarray(info.added), np.asarray(info.removed)
    assert ((added >= 0) ^ (removed >= 0)).all()  # a toggle adds or removes
    size = int(accepted[added >= 0].sum()) - int(accepted[removed >= 0].sum())
    assert size == int(final.size) > 0
    prob = np.asarray(info.acceptance_prob)
    assert ((prob >= 0) & (prob <= 1)).all() and 0.05 < accepted.mean() < 0.95
    assert not np.asarray(info.at_capacity).any()
    assert info_k.accepted.shape == (1100,) and int(final_k.size) == 8
    assert 0.05 < np.asarray(info_k.accepted).mean() < 0.95
    removed, added = np.asarray(info_k.removed), np.asarray(info_k.added)
    assert ((removed >= 0) & (added >= 0)).all() and (removed != added).all()
    refreshed = mcmc.refresh(final_k, L)
    np.testing.assert_allclose(refreshed.inverse, final_k.inverse, rtol=0, atol=1e-9)


# ----------------------------------------------------------------------------
# jit, vmap, retracing, keys, sharding. One jitted program (32 chains of each
# kind) serves the vmap, retrace and sharding references.
# ----------------------------------------------------------------------------

NUM_CHAINS = 32  # 4 per device in the sharded tests


def _both_chains(keys, L, start, start_k):
    """``len(keys)`` chains of each kind, 30 steps from ``start`` / ``start_k``."""

    def one(key):
        key_a, key_k = jax.random.split(key)
        return mcmc.run(key_a, start, L, 30)[0], mcmc.run_k(key_k, start_k, L, 30)[0]

    return jax.vmap(one)(keys)


_jitted_chains = jax.jit(chex.assert_max_traces(_both_chains, n=1))


def _inputs(seed=8):
    """Keys, L (float32, N = 6) and the two initial states."""
    L = jnp.asarray(_kernel(6, seed=seed), jnp.float32)
    keys = jax.random.split(jax.random.key(seed), NUM_CHAINS)
    return keys, L, mcmc.init(L, np.array([seed % 6]), max_size=4), mcmc.init_k(L, k=2)


def _assert_states_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        if jnp.issubdtype(x.dtype, jnp.floating):
            np.testing.assert_allclose(
                np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-5
            )
        else:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_vmapped_jitted_chains_equal_eager_chains_and_do_not_retrace():
    keys, L, start, start_k = _inputs()
    batched = _jitted_chains(keys, L, start, start_k)
    i = 5  # an eager run of chain 5 (an eager run compiles its scan)
    eager = mcmc.run(jax.random.split(keys[i])[0], start, L, 30)[0]
    _assert_states_equal(jax.tree.map(lambda x: x[i], batched[0]), eager)
    for j in (0, 1, 2):  # members, slots, inverse and log-determinant agree
        _check_state(L, jax.tree.map(lambda x: x[j], batched[0]), rtol=1e-4)
        _check_state(L, jax.tree.map(lambda x: x[j], batched[1]), rtol=1e-4)
    for seed in (9, 10):  # new values, same shapes: no retrace
        jax.block_until_ready(_jitted_chains(*_inputs(seed)))


def test_legacy_keys_and_k_equals_n():
    # A legacy uint32 key gives the words of its wrapped typed key. With k = N
    # there is one set: every step is an accepted null move.
    legacy = jax.random.PRNGKey(3)
    np.testing.assert_array_equal(
        mcmc._words(legacy), mcmc._words(jax.random.wrap_key_data(legacy))
    )
    L = jnp.asarray(_kernel(3, seed=6), jnp.float32)
    state = mcmc.init_k(L, k=3)
    final, info = mcmc.run_k(legacy, state, L, 5)
    np.testing.assert_array_equal(final.members, state.members)
    assert np.asarray(info.accepted).all() and (np.asarray(info.added) == -1).all()


def _assert_sharded_on_batch(tree, explicit):
    for leaf in jax.tree.leaves(tree):
        spec = jax.typeof(leaf).sharding.spec if explicit else leaf.sharding.spec
        assert spec and spec[0] == sharding.BATCH_AXIS, spec


@pytest.mark.multidevice
def test_sharded_chains_explicit_mesh_equal_unsharded():
    keys, L, start, start_k = _inputs()
    mesh = sharding.batch_mesh()
    with jax.set_mesh(mesh):
        replicated = sharding.replicate((L, start, start_k), mesh)
        out = jax.jit(_both_chains)(sharding.shard_batch(keys, mesh), *replicated)
        _assert_sharded_on_batch(out, explicit=True)
    _assert_states_equal(out, _jitted_chains(keys, L, start, start_k))


@pytest.mark.multidevice
def test_sharded_chains_auto_mesh_equal_unsharded():
    keys, L, start, start_k = _inputs()
    mesh = sharding.batch_mesh(axis_type=AxisType.Auto)
    batch = NamedSharding(mesh, P(sharding.BATCH_AXIS))
    replicated = NamedSharding(mesh, P())
    fn = jax.jit(
        _both_chains,
        in_shardings=(batch, replicated, replicated, replicated),
        out_shardings=batch,
    )
    out = fn(jax.device_put(keys, batch), L, start, start_k)
    _assert_sharded_on_batch(out, explicit=False)
    _assert_states_equal(out, _jitted_chains(keys, L, start, start_k))


# ----------------------------------------------------------------------------
# Bad input.
# ----------------------------------------------------------------------------


def test_bad_kernel():
    L = _kernel(4, seed=12)
    asym = L.copy()
    asym[0, 1] += 0.5
    with pytest.raises(ValueError, match="L must be symmetric"):
        mcmc.init(asym, max_size=2)
    indefinite = np.array([[1.0, 2.0], [2.0, 1.0]], np.float32)
    with pytest.raises(ValueError, match="L is not positive semi-definite"):
        mcmc.init(indefinite, max_size=2)
    with pytest.raises(ValueError, match="L is not positive semi-definite"):
        mcmc.init_k(-np.eye(3, dtype=np.float32), k=1)
    with pytest.raises(ValueError, match="L must be square"):
        mcmc.init(np.ones((3, 4), np.float32), max_size=2)
    with pytest.raises(ValueError, match="L must have a floating dtype"):
        mcmc.init(np.eye(3, dtype=np.int32), max_size=2)
    with pytest.raises(ValueError, match="L has non-finite"):
        mcmc.init(np.full((3, 3), np.nan, np.float32), max_size=2)


def test_bad_sizes_and_initial_sets():
    L = jnp.asarray(_kernel(4, seed=13), jnp.float32)
    for bad in (0, 5, 2.0):
        with pytest.raises(ValueError, match="max_size"):
            mcmc.init(L, max_size=bad)
    for bad in (0, 5, 1.5):
        with pytest.raises(ValueError, match="k"):
            mcmc.init_k(L, k=bad)
    with pytest.raises(ValueError, match="k is required"):
        mcmc.init_k(L)
    with pytest.raises(ValueError, match="initial"):
        mcmc.init(L, np.ones(3, bool), max_size=2)  # wrong length
    with pytest.raises(ValueError, match="initial"):
        mcmc.init(L, np.array([0, 4]), max_size=2)  # out of range
    with pytest.raises(ValueError, match="initial"):
        mcmc.init(L, np.array([1, 1]), max_size=2)  # repeated
    with pytest.raises(ValueError, match="initial"):
        mcmc.init(L, np.array([0.0, 1.0]), max_size=2)  # not integer
    with pytest.raises(ValueError, match="initial has 3 items"):
        mcmc.init(L, np.array([0, 1, 2]), max_size=2)
    with pytest.raises(ValueError, match="initial has 3 items but k = 2"):
        mcmc.init_k(L, np.array([0, 1, 2]), k=2)
    with pytest.raises(ValueError, match="initial must list k items"):
        mcmc.init_k(L, np.array([0, -1]))
    # Singular initial sets, and k above the rank (a rank-1 kernel).
    x = np.random.default_rng(0).standard_normal((6, 1)).astype(np.float32)
    low = x @ x.T
    with pytest.raises(ValueError, match="initial: det"):
        mcmc.init(low, np.array([0, 1]), max_size=4)
    with pytest.raises(ValueError, match="initial: det"):
        mcmc.init_k(low, np.array([0, 1]))
    with pytest.raises(ValueError, match="k = 2 exceeds the numerical rank"):
        mcmc.init_k(low, k=2)
    # A bool initial fixes k; the index and bool forms give the same state.
    L6 = jnp.asarray(_kernel(6, seed=13), jnp.float32)
    a = mcmc.init_k(L6, np.array([False, True, False, True, False, False]))
    b = mcmc.init_k(L6, np.array([1, 3]))
    _assert_states_equal(a, b)


def test_bad_step_arguments():
    L = jnp.asarray(_kernel(4, seed=14), jnp.float32)
    state = mcmc.init(L, max_size=2)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"L must have shape \(4, 4\)"):
        mcmc.step(key, state, jnp.eye(5))
    with pytest.raises(ValueError, match="L has dtype"):
        mcmc.step(key, state, L.astype(jnp.float16))
    with pytest.raises(ValueError, match="state must be a dpp.mcmc.State"):
        mcmc.step(key, (state.members,), L)
    with pytest.raises(ValueError, match="key must be"):
        mcmc.step(jnp.zeros(3, jnp.uint32), state, L)
    with pytest.raises(ValueError, match="step_k needs a k-DPP state"):
        mcmc.step_k(key, state, L)
    with pytest.raises(ValueError, match="run_k needs a k-DPP state"):
        mcmc.run_k(key, state, L, 3)
    for bad in (0, 2.0):
        with pytest.raises(ValueError, match="num_steps"):
            mcmc.run(key, state, L, bad)
    with pytest.raises(ValueError, match="refresh_every"):
        mcmc.run(key, state, L, 3, refresh_every=0)


def test_bad_values_under_jit_are_flagged():
    # One jitted program. A singular initial set: log_det = -inf. An indefinite
    # L (not checked under jit): adding item 1 to {0} has ratio 1 - 4 = -3,
    # which shows in Info.ratio and is always rejected.
    x = np.random.default_rng(0).standard_normal((4, 1)).astype(np.float32)
    low = jnp.asarray(x @ x.T)
    indefinite = jnp.array([[1.0, 2.0], [2.0, 1.0]], jnp.float32)

    def flagged(keys, low, indefinite):
        singular = mcmc.init(low, jnp.array([True, True, False, False]), max_size=3)
        start = mcmc.init(indefinite, jnp.array([True, False]), max_size=2)
        steps = jax.vmap(mcmc.step, in_axes=(0, None, None))(keys, start, indefinite)
        return singular.log_det, steps

    keys = jax.random.split(jax.random.key(0), 64)
    log_det, (final, info) = jax.jit(flagged)(keys, low, indefinite)
    assert float(log_det) == -np.inf
    ratio = np.asarray(info.ratio)
    assert (ratio == -3).any()
    assert not np.asarray(info.accepted)[ratio < 0].any()
    assert not np.asarray(final.members)[:, 1][ratio < 0].any()


# ----------------------------------------------------------------------------
# Larger N (slow): inclusion probabilities against the exact marginals.
# ----------------------------------------------------------------------------


def _k_dpp_marginals(L, k):
    """``P(i in S)`` of the k-DPP: ``sum_j V_ij^2 P(j in J)`` (Kulesza & Taskar)."""
    lam, V = np.linalg.eigh(L)
    n = lam.size
    # e_l of all eigenvalues but j, for every j: prefix and suffix tables.
    pre = np.zeros((n + 1, k + 1))
    suf = np.zeros((n + 2, k + 1))
    pre[0, 0] = suf[n + 1, 0] = 1.0
    for j in range(n):
        pre[j + 1] = pre[j]
        pre[j + 1, 1:] += lam[j] * pre[j, :-1]
    for j in range(n, 0, -1):
        suf[j] = suf[j + 1]
        suf[j, 1:] += lam[j - 1] * suf[j + 1, :-1]
    e_k = pre[n, k]
    rest = [sum(pre[j, a] * suf[j + 2, k - 1 - a] for a in range(k)) for j in range(n)]
    p_eig = lam * np.array(rest) / e_k
    return (V**2) @ p_eig


@pytest.mark.slow
def test_chains_keep_the_law_at_larger_n(x64):
    # N = 60 (smooth kernel): chains started from exact draws (dpp.sample,
    # dpp.sample_k) are still distributed as the DPP / k-DPP after 600 steps
    # (three refresh blocks): inclusion frequencies against the exact
    # marginals, 5 sigma. Invariance, not mixing, is what this checks at a
    # size where the law cannot be enumerated.
    from jaxsampling.kernels import dpp

    jax.config.update("jax_disable_most_optimizations", False)  # runtime-bound
    rng = np.random.default_rng(15)
    x = rng.uniform(size=(60, 2))
    L = 4.0 * np.exp(-((x[:, None] - x[None]) ** 2).sum(-1) / (2 * 0.15**2))
    lam, V = np.linalg.eigh(L)
    K_diag = (V**2) @ (lam / (1 + lam))
    k, chains, steps, max_size = 5, 2000, 600, 40
    Lj = jnp.asarray(L)
    spectrum = dpp.spectrum_from_likelihood(Lj)
    draws = dpp.sample(jax.random.key(7), spectrum, max_size=max_size, num_draws=chains)
    assert not bool(draws.overflow.any())
    draws_k = dpp.sample_k(jax.random.key(8), spectrum, k, num_draws=chains)

    def chain(key, items, items_k):
        key_a, key_k = jax.random.split(key)
        a = mcmc.run(key_a, mcmc.init(Lj, items, max_size=max_size), Lj, steps)[0]
        b = mcmc.run_k(key_k, mcmc.init_k(Lj, items_k), Lj, steps)[0]
        return a.members, b.members

    keys = jax.random.split(jax.random.key(9), chains)
    members, members_k = jax.jit(jax.vmap(chain))(keys, draws.indices, draws_k)
    testing.assert_binomial_count(np.asarray(members).sum(0), chains, K_diag)
    marginals_k = _k_dpp_marginals(L, k)
    testing.assert_binomial_count(np.asarray(members_k).sum(0), chains, marginals_k)
