"""jit, vmap, retracing, key forms and sharding of the DPP samplers.

A second call of the jitted samplers with new values does not retrace; jit
equals eager (slow run; the default run compares eager and jitted draws in
test_ensemble's overflow test); vmap over single keys equals the batched
form (a batch of keys), which equals ``num_draws`` from one key, also on the
bucketed chain rule; legacy uint32 keys equal typed keys; a batch of keys
sharded over the 8 simulated devices, on an Explicit mesh (under
``jax.set_mesh``) and on an Auto mesh (``in_shardings`` /
``out_shardings``), gives the unsharded draws and stays sharded.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxsampling import sharding
from jaxsampling.kernels import dpp
from tests.kernels.dpp import common

B = 16  # two draws per device


@functools.lru_cache(maxsize=None)
def _inputs():
    """(V[6, 3], spectrum of L[5, 5] (rank 4), spectrum of L[6, 6], X[6, 2]), float32."""
    V = jnp.asarray(common.basis(6, 3), jnp.float32)
    X = jnp.asarray(common.design6(), jnp.float32)
    return V, common.spectrum("likelihood5"), common.spectrum("likelihood6"), X


def _rescaled(spectrum, scale):
    """The spectrum of ``scale * L`` (numpy: no new eager compiles)."""
    log_lam = np.asarray(spectrum.log_eigenvalues, np.float64) + np.log(scale)
    p = np.exp(log_lam) / (1 + np.exp(log_lam))
    return dpp.Spectrum(
        np.asarray(spectrum.eigenvectors), p.astype(np.float32), log_lam.astype(np.float32)
    )


def _new_values(i):
    """Inputs with the shapes and dtypes of ``_inputs()`` and different values."""
    if i == 0:
        return _inputs()
    V, spectrum, spectrum_k, X = _inputs()
    scale = 2.0**i
    V = np.asarray(common.basis(6, 3, seed=i), np.float32)
    return V, _rescaled(spectrum, scale), _rescaled(spectrum_k, scale), np.asarray(X) * scale


def _projection(keys, V, spectrum, spectrum_k, X):
    return dpp.sample_projection(keys, V)


def _ensemble(keys, V, spectrum, spectrum_k, X):
    return dpp.sample(keys, spectrum, max_size=4)


def _k(keys, V, spectrum, spectrum_k, X):
    return dpp.sample_k(keys, spectrum_k, 3)


def _volume(keys, V, spectrum, spectrum_k, X):
    return dpp.volume_sample(keys, X, 3)


def _volume_rescaled(keys, V, spectrum, spectrum_k, X):
    return dpp.volume_rescaled_sample(keys, X, 3)


SAMPLERS = {
    "projection": _projection,
    "ensemble": _ensemble,
    "k": _k,
    "volume": _volume,
    "volume_rescaled": _volume_rescaled,
}


def _all(keys, V, spectrum, spectrum_k, X):
    """Every sampler at once: compiling one program is cheaper than five."""
    return {name: fn(keys, V, spectrum, spectrum_k, X) for name, fn in SAMPLERS.items()}


# Traced once for the whole module: the no-retrace test calls it with new values.
_jitted_all = jax.jit(chex.assert_max_traces(_all, n=1))


def _keys(seed=0):
    return jax.random.split(jax.random.key(seed), B)


@functools.lru_cache(maxsize=None)
def _batched(seed=0):
    return jax.tree.map(np.asarray, _jitted_all(_keys(seed), *_inputs()))


def _assert_trees_equal(actual, expected):
    chex.assert_trees_all_equal_structs(actual, expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(e))


def test_no_retrace_on_new_values():
    for i in range(3):
        out = _jitted_all(_keys(i), *_new_values(i))
        assert out["projection"].shape == (B, 3)
        common.assert_valid_draws(out["projection"], 6)
        common.assert_valid_draws(out["ensemble"].indices, 5, out["ensemble"].size)


# Eager runs compile op by op (a second compile per sampler). The default run
# checks eager == jit through test_ensemble's overflow test (the sampler with
# host-side logic: eager draws with the fallback equal the jitted draws).
@pytest.mark.slow
@pytest.mark.parametrize("name", list(SAMPLERS))
def test_jit_equals_eager(name):
    eager = SAMPLERS[name](_keys(), *_inputs())
    _assert_trees_equal(eager, _batched()[name])


@pytest.mark.parametrize(
    "names",
    [
        ("projection", "ensemble", "k"),
        pytest.param(("volume", "volume_rescaled"), marks=pytest.mark.slow),
    ],
    ids=["chain_rule", "volume"],
)
def test_vmap_over_keys_equals_batched_keys(names):
    # Under vmap each draw is a single-key call (B = 1 inside the kernel). The
    # volume samplers add only vmapped shuffles and categorical draws: slow run.
    def some(keys, *inputs):
        return {name: SAMPLERS[name](keys, *inputs) for name in names}

    single = jax.jit(jax.vmap(some, in_axes=(0, None, None, None, None)))
    expected = {name: _batched()[name] for name in names}
    _assert_trees_equal(single(_keys(), *_inputs()), expected)


def test_num_draws_equals_split_keys():
    # Every sampler turns (key, num_draws) into keys the same way (_checks.as_keys).
    V = _inputs()[0]
    out = common.sample_projection(jax.random.key(0), V, num_draws=B)
    np.testing.assert_array_equal(out, _batched()["projection"])


def test_legacy_keys_equal_typed_keys():
    V = _inputs()[0]
    typed = _keys()
    legacy = jax.random.key_data(typed)
    assert legacy.dtype == jnp.uint32 and legacy.shape == (B, 2)
    expected = _batched()["projection"]
    np.testing.assert_array_equal(common.sample_projection(legacy, V), expected)
    # One legacy key and num_draws: jax.random.PRNGKey(0) is key(0)'s data.
    np.testing.assert_array_equal(
        common.sample_projection(jax.random.PRNGKey(0), V, num_draws=B), expected
    )


def test_bucketed_vmap_equals_batched():
    # 40 items, max_size 16: under vmap lax.switch becomes a select and each
    # draw takes its own width (most the narrow one); the draws must not change.
    # The batched draws are test_ensemble's (one program for both files).
    keys, batched = common.bucketed_draws()
    single = jax.jit(jax.vmap(functools.partial(dpp.sample, max_size=16), in_axes=(0, None)))
    out = single(keys[:64], common.spectrum("likelihood40"))
    _assert_trees_equal(out, jax.tree.map(lambda x: x[:64], batched))


# ----------------------------------------------------------------------------
# A batch of keys sharded over the 8 devices.
# ----------------------------------------------------------------------------


@pytest.mark.multidevice
def test_sharded_explicit_mesh_equals_unsharded():
    # Every sampler at once (one program); the inputs other than the keys are
    # passed as they are (not placed on the mesh).
    expected = _batched()  # cached inputs and reference made outside the mesh
    mesh = sharding.batch_mesh()
    with jax.set_mesh(mesh):
        keys = sharding.shard_batch(_keys(), mesh)
        out = jax.jit(_all)(keys, *_inputs())
        for name, tree in out.items():
            for leaf in jax.tree.leaves(tree):
                assert jax.typeof(leaf).sharding.spec[0] == sharding.BATCH_AXIS, name
    _assert_trees_equal(out, expected)


@pytest.mark.multidevice
def test_sharded_auto_mesh_equals_unsharded():
    expected = _batched()
    mesh = sharding.batch_mesh(axis_type=AxisType.Auto)
    batch = NamedSharding(mesh, P(sharding.BATCH_AXIS))
    fn = jax.jit(
        lambda keys: _all(keys, *_inputs()), in_shardings=batch, out_shardings=batch
    )
    out = fn(jax.device_put(_keys(), batch))
    for leaf in jax.tree.leaves(out):
        assert leaf.sharding.spec[0] == sharding.BATCH_AXIS
        assert len(leaf.sharding.device_set) == 8
    _assert_trees_equal(out, expected)
