"""Finite NTK ensembles: training, streamed evaluation, agreement with the Gaussian-process law."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxsampling import sharding
from jaxsampling.kernels import ntk

PI = np.array([3, 0, 4, 1, 2])
K = 5


@functools.lru_cache(maxsize=None)
def _ensemble(num_models=256, width=512):
    """num_models networks on PI, trained to float32 round-off (lr = k, 200 steps)."""
    keys = jax.random.split(jax.random.key(0), num_models)
    return ntk.train(keys, PI, width=width, steps=200, learning_rate=float(K))


def test_training_is_gradient_descent_per_network():
    trained = ntk.train(jax.random.split(jax.random.key(1), 3), PI, width=32, steps=25, learning_rate=2.0)
    net = ntk.TwoLayer(32, K)
    x, y = ntk.training_set(PI)
    params = net.init(jax.random.split(jax.random.key(1), 3)[1], x)
    loss = lambda p: 0.5 * jnp.mean(jnp.sum((net.apply(p, x) - y) ** 2, axis=-1))  # noqa: E731
    losses = []
    for _ in range(25):
        value, grads = jax.value_and_grad(loss)(params)
        losses.append(value)
        params = jax.tree.map(lambda p, g: p - 2.0 * g, params, grads)
    got = jax.tree.map(lambda leaf: leaf[1], trained.params)
    chex.assert_trees_all_close(got, params, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(trained.losses[1], losses, rtol=2e-5)
    np.testing.assert_allclose(trained.final_loss[1], loss(params), rtol=1e-4)
    adam = ntk.train(jax.random.split(jax.random.key(1), 2), PI, width=32, steps=200, optimizer=optax.adam(0.05))
    assert float(adam.final_loss.max()) < 1e-3
    assert float(_ensemble().final_loss.max()) < 1e-10


def test_streamed_evaluation_equals_dense_rounding():
    trained = _ensemble(num_models=12, width=64)
    x = ntk.all_inputs(K)
    outputs = jax.vmap(ntk.TwoLayer(64, K).apply, in_axes=(0, None))(trained.params, x)  # [M, n, k]
    target = np.asarray(ntk.targets(x, PI))
    weight = np.asarray(x.sum(1)).astype(int)
    cut = ntk.midpoint_thresholds(ntk.permutation_posterior(K))
    stats = [ntk.evaluate(trained.params, PI, group_sizes=(1, 4, 12), chunk_size=c) for c in (7, 64)]
    for g, got_small, got_big in zip((1, 4, 12), stats[0].recovered, stats[1].recovered):
        means = np.asarray(outputs).reshape(12 // g, g, *outputs.shape[1:]).mean(1)
        for r, rule in enumerate(ntk.RULES):
            bits = ntk.round_outputs(jnp.asarray(means), rule, weights=jnp.asarray(weight), thresholds=cut,
                                     tolerance=1e-4)
            ok = np.all(np.asarray(bits) == target, axis=-1)  # [groups, n]
            expected = np.stack([np.bincount(weight[o], minlength=K + 1)[1:] for o in ok])
            np.testing.assert_array_equal(got_small[:, r], expected, err_msg=f"{g} {rule}")
            np.testing.assert_array_equal(got_big[:, r], expected)
    np.testing.assert_allclose(stats[0].output_sum, stats[1].output_sum, rtol=1e-5, atol=1e-5)
    per_class = np.einsum("mcj,cjb,ch->mhb", outputs, np.stack([target, 1 - target], -1), np.eye(K)[weight - 1])
    np.testing.assert_allclose(stats[0].output_sum, per_class, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(stats[0].counts[:, 0], [np.sum(weight == h) * h for h in range(1, K + 1)])


def test_finite_ensemble_moments_approach_the_gaussian_process():
    """Per weight and bit: |mean - mu| <= 5 SE + 0.5 / sqrt(width) (the finite-width bias,
    measured 0.009 at width 512 for k = 5, 0.025 for k = 12); variance within 5 SE + 10%
    (+ 1e-6: the training inputs' variance is the square of their ~1e-7 residual, not 0)."""
    trained = _ensemble()
    moments = ntk.class_moments(ntk.evaluate(trained.params, PI))
    post = ntk.permutation_posterior(K)
    gp_mean = np.stack([post.mean_one, post.mean_zero], axis=1)
    gp_var = np.stack([post.variance, post.variance], axis=1)
    present = np.isfinite(np.asarray(moments.mean))
    assert present.sum() == 2 * K - 1
    mean_gap = np.abs(np.asarray(moments.mean) - gp_mean)[present]
    assert np.all(mean_gap <= 5 * np.asarray(moments.mean_se)[present] + 0.5 / np.sqrt(512)), mean_gap
    var_gap = np.abs(np.asarray(moments.variance) - gp_var)[present]
    assert np.all(var_gap <= 5 * np.asarray(moments.variance_se)[present] + 0.1 * gp_var[present] + 1e-6), var_gap
    # Training inputs (h = 1) are fitted: mean 1 / 0 and variance ~ 0.
    np.testing.assert_allclose(moments.mean[0], [1.0, 0.0], atol=1e-5)


def test_recovered_fraction_rises_with_m_and_follows_the_prediction():
    """Fraction recovered by groups of g networks vs expected_fraction: 5 SE (spread between
    groups) + 0.03 for the finite-width bias; sign rule strictly better with more models."""
    trained = _ensemble()
    sizes = (1, 4, 16, 64)
    stats = ntk.evaluate(trained.params, PI, group_sizes=sizes)
    post = ntk.permutation_posterior(K)
    sign = []
    for g, recovered in zip(sizes, stats.recovered):
        fractions = np.asarray(recovered.sum(-1)) / (2**K - 1)  # [groups, rules]
        se = fractions.std(0, ddof=1) / np.sqrt(len(fractions))
        for r, rule in enumerate(ntk.RULES):
            predicted = float(ntk.expected_fraction(post, g, rule))
            assert abs(fractions[:, r].mean() - predicted) <= 5 * se[r] + 0.03, (g, rule, fractions[:, r].mean(), predicted)
        sign.append(fractions[:, 0].mean())
    assert np.all(np.diff(sign) > 0), sign
    strict = ntk.evaluate(trained.params, PI, group_sizes=(1,), sign_tolerance=0.0)
    # The paper's strict "> 0" loses about half the training inputs' zero bits to the residual.
    assert strict.recovered[0][:, 0, 0].mean() < stats.recovered[0][:, 0, 0].mean() - 2


_jitted_train = jax.jit(
    chex.assert_max_traces(lambda keys: ntk.train(keys, PI, width=16, steps=5).params, n=1)
)


def test_jit_and_no_retrace():
    first = _jitted_train(jax.random.split(jax.random.key(0), 8))
    again = _jitted_train(jax.random.split(jax.random.key(1), 8))  # new keys: no retrace
    assert not np.allclose(first["params"]["w1"], again["params"]["w1"])


@pytest.mark.multidevice
def test_sharded_ensemble_equals_unsharded():
    keys = jax.random.split(jax.random.key(3), 16)

    def run(keys):
        trained = ntk.train(keys, PI, width=16, steps=20, learning_rate=float(K))
        stats = ntk.evaluate(trained.params, PI, group_sizes=(2, 16), chunk_size=8)
        return trained.params, stats

    expected = jax.tree.map(np.asarray, jax.jit(run)(keys))
    mesh = sharding.batch_mesh()
    with jax.set_mesh(mesh):
        params, stats = jax.jit(run)(sharding.shard_batch(keys, mesh))
    assert jax.typeof(params["params"]["w1"]).sharding.spec[0] == sharding.BATCH_AXIS
    assert jax.typeof(stats.output_sum).sharding.spec[0] == sharding.BATCH_AXIS
    chex.assert_trees_all_close((params, stats), expected, rtol=1e-5, atol=1e-5)
    mesh = sharding.batch_mesh(axis_type=AxisType.Auto)
    batch = NamedSharding(mesh, P(sharding.BATCH_AXIS))
    params, stats = jax.jit(run, in_shardings=batch)(jax.device_put(keys, batch))
    assert len(params["params"]["w1"].sharding.device_set) == 8
    chex.assert_trees_all_close((params, stats), expected, rtol=1e-5, atol=1e-5)


def test_bad_input_raises():
    keys = jax.random.split(jax.random.key(0), 2)
    with pytest.raises(ValueError, match="width"):
        ntk.train(keys, PI, width=0, steps=3)
    with pytest.raises(ValueError, match="permutation"):
        ntk.train(keys, np.array([0, 1, 1]), width=4, steps=3)
    with pytest.raises(ValueError, match="k .* >= 2"):
        ntk.train(keys, np.array([0]), width=4, steps=3)
    with pytest.raises(ValueError, match="keys"):
        ntk.train(jax.random.key(0), PI, width=4, steps=3)
    params = ntk.train(keys, PI, width=4, steps=1).params
    with pytest.raises(ValueError, match="group size"):
        ntk.evaluate(params, PI, group_sizes=(3,))
    with pytest.raises(ValueError, match="thresholds"):
        ntk.evaluate(params, PI, thresholds=jnp.zeros(3))
    with pytest.raises(ValueError, match="k = 4"):
        ntk.evaluate(params, np.array([1, 0, 3, 2]))
