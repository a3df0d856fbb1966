"""Tests for jaxsampling.train.schedules and jaxsampling.train.optim.

Refinement weights against the closed forms (linear decay for constant norms)
and a brute-force double loop; the median filter; every schedule kind of
``from_config``; the learning rate an optimiser from ``optim.make`` actually
applies; bad input.
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxsampling.train import optim, schedules


def _steps(schedule, num):
    """The schedule at steps 0..num-1, eagerly, as float64 numpy."""
    return np.array([float(schedule(s)) for s in range(num)])


def _linear_weights(num):
    t = np.arange(num)
    return (num - 1 - t) / (num - 1)


def _brute_force_weights(g, power):
    """w_t = g_t^-p sum_{s > t} g_s^-p / max_u (.), by a double loop."""
    num = len(g)
    w = np.zeros(num)
    for t in range(num):
        tail = 0.0
        for s in range(t + 1, num):
            tail += g[s] ** -power
        w[t] = g[t] ** -power * tail
    return w / w.max()


def _config(**kwargs):
    return ml_collections.ConfigDict(kwargs)


# ----------------------------------------------------------------------------
# refinement_weights.
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("power", [1, 2])
@pytest.mark.parametrize("num", [2, 3, 17, 100])
def test_constant_norms_give_exact_linear_decay(num, power):
    for value in (1.0, 0.37):
        w = schedules.refinement_weights(np.full(num, value), tau=0.0, power=power)
        assert w.dtype == np.float64 and w.shape == (num,)
        if value == 1.0:
            np.testing.assert_array_equal(w, _linear_weights(num))
        else:  # the scale of the norms cancels (up to rounding)
            np.testing.assert_allclose(w, _linear_weights(num), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("power", [1, 2])
def test_weights_match_brute_force(power):
    rng = np.random.default_rng(0)
    for num in (2, 5, 40):
        g = rng.lognormal(sigma=1.0, size=num)
        w = schedules.refinement_weights(g, power=power)
        np.testing.assert_allclose(w, _brute_force_weights(g, power), rtol=1e-12, atol=1e-15)
        assert w.max() == 1.0 and w[-1] == 0.0
        assert np.all(w[:-1] > 0)


def test_weights_accept_lists_and_float32():
    g = [0.5, 2.0, 1.0, 4.0]
    expected = _brute_force_weights(np.asarray(g), 2)
    np.testing.assert_allclose(schedules.refinement_weights(g), expected, rtol=1e-12)
    np.testing.assert_allclose(
        schedules.refinement_weights(np.asarray(g, np.float32)), expected, rtol=1e-12
    )
    np.testing.assert_allclose(
        schedules.refinement_weights(jnp.asarray(g)), expected, rtol=1e-6
    )


def test_larger_norms_get_smaller_steps():
    """A norm k times larger than its neighbours gets a k^-p times smaller weight
    (relative to the constant-norm weight at that step)."""
    g = np.ones(10)
    g[4] = 3.0
    for power in (1, 2):
        w = schedules.refinement_weights(g, power=power)
        brute = _brute_force_weights(g, power)
        np.testing.assert_allclose(w, brute, rtol=1e-12)
        ratio = w[4] / w[5]  # tails: sum_{s>4} = 5, sum_{s>5} = 4
        np.testing.assert_allclose(ratio, 3.0**-power * 5 / 4, rtol=1e-12)


@pytest.mark.parametrize("power", [1, 2])
def test_median_filter_removes_a_single_spike(power):
    num = 20
    g = np.ones(num)
    g[7] = 50.0
    # No filter: the spike changes the weights.
    unfiltered = schedules.refinement_weights(g, tau=0.0, power=power)
    np.testing.assert_allclose(unfiltered, _brute_force_weights(g, power), rtol=1e-12)
    assert np.max(np.abs(unfiltered - _linear_weights(num))) > 0.1
    # tau * T < 1.5 rounds to width 1: no filter either.
    np.testing.assert_array_equal(schedules.refinement_weights(g, tau=0.07, power=power), unfiltered)
    # Width 3 (tau * T = 3) and wider: the spike is gone, the rest is untouched.
    for tau in (0.15, 0.25, 0.5):
        w = schedules.refinement_weights(g, tau=tau, power=power)
        np.testing.assert_array_equal(w, _linear_weights(num))
    # An even width is made odd: tau * T = 2 gives width 3 as well.
    np.testing.assert_array_equal(
        schedules.refinement_weights(g, tau=0.1, power=power), _linear_weights(num)
    )


def test_median_filter_matches_brute_force_on_noisy_norms():
    rng = np.random.default_rng(1)
    g = rng.lognormal(sigma=0.5, size=31)
    tau = 5 / 31  # width 5
    padded = np.concatenate([[g[0]] * 2, g, [g[-1]] * 2])  # "nearest" edges
    smooth = np.array([np.median(padded[t : t + 5]) for t in range(31)])
    for power in (1, 2):
        w = schedules.refinement_weights(g, tau=tau, power=power)
        np.testing.assert_allclose(w, _brute_force_weights(smooth, power), rtol=1e-12)
        assert w.max() == 1.0 and w[-1] == 0.0


def test_bad_refinement_arguments():
    good = np.ones(5)
    bad_norms = [
        np.ones(1),
        np.ones((2, 3)),
        np.float64(1.0),
        np.array([1.0, 0.0, 1.0]),
        np.array([1.0, -2.0, 1.0]),
        np.array([1.0, np.nan, 1.0]),
        np.array([1.0, np.inf, 1.0]),
    ]
    for g in bad_norms:
        with pytest.raises(ValueError, match="grad_norms"):
            schedules.refinement_weights(g)
        with pytest.raises(ValueError, match="grad_norms"):
            schedules.refined(g, 0.1)
    for tau in (-0.1, 1.5, np.nan):
        with pytest.raises(ValueError, match="tau"):
            schedules.refinement_weights(good, tau=tau)
    for power in (0, 3, 1.5, -1):
        with pytest.raises(ValueError, match="power"):
            schedules.refinement_weights(good, power=power)


# ----------------------------------------------------------------------------
# refined and linear_decay.
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("num", [2, 5, 64])
def test_refined_constant_norms_equals_linear_decay(num):
    peak = 0.1
    refined = _steps(schedules.refined(np.ones(num), peak), num + 3)
    linear = _steps(schedules.linear_decay(peak, num), num + 3)
    expected = np.concatenate([peak * _linear_weights(num), [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(refined, expected, rtol=1e-6, atol=1e-7 * peak)
    np.testing.assert_allclose(linear, expected, rtol=1e-6, atol=1e-7 * peak)
    assert refined[0] == linear[0] == np.float32(peak)
    assert np.all(refined[num - 1 :] == 0.0) and np.all(linear[num - 1 :] == 0.0)


@pytest.mark.parametrize("warmup", [1, 4])
def test_refined_with_warmup_equals_linear_decay(warmup):
    peak, decay = 0.5, 7
    total = warmup + decay
    refined = _steps(schedules.refined(np.ones(decay), peak, warmup_steps=warmup), total + 3)
    linear = _steps(schedules.linear_decay(peak, total, warmup), total + 3)
    expected = np.concatenate(
        [peak * np.arange(warmup) / warmup, peak * _linear_weights(decay), [0.0, 0.0, 0.0]]
    )
    np.testing.assert_allclose(refined, expected, rtol=1e-6, atol=1e-7 * peak)
    np.testing.assert_allclose(linear, expected, rtol=1e-6, atol=1e-7 * peak)
    assert refined[warmup] == np.float32(peak)  # the peak right after warmup


def test_refined_follows_the_weights():
    g = np.random.default_rng(2).lognormal(size=12)
    for warmup in (0, 3):
        schedule = schedules.refined(g, 2.0, warmup_steps=warmup, power=1)
        values = _steps(schedule, warmup + 14)
        w = schedules.refinement_weights(g, power=1)
        np.testing.assert_allclose(values[warmup : warmup + 12], 2.0 * w, rtol=1e-6)
        np.testing.assert_array_equal(values[warmup + 12 :], 0.0)
        # Negative steps (never used by optax) give 0, not an index wrap-around.
        assert float(schedule(-1)) == 0.0


def test_refined_is_jittable():
    g = np.random.default_rng(3).lognormal(size=10)
    for warmup in (0, 2):
        schedule = schedules.refined(g, 0.3, warmup_steps=warmup, tau=0.3)
        jitted = jax.jit(schedule)
        steps = jnp.arange(warmup + 12)
        eager = _steps(schedule, warmup + 12)
        np.testing.assert_array_equal([float(jitted(s)) for s in range(warmup + 12)], eager)
        np.testing.assert_array_equal(jax.jit(jax.vmap(schedule))(steps), eager.astype(np.float32))
        assert jitted._cache_size() == 1  # no retrace for new step values


# ----------------------------------------------------------------------------
# from_config.
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("warmup", [0, 3])
def test_from_config_every_kind(warmup):
    peak, total = 0.2, 12
    num = total + 3
    base = dict(peak_value=peak, warmup_steps=warmup)
    ramp = peak * np.arange(warmup) / max(warmup, 1)

    constant = _steps(schedules.from_config(_config(kind="constant", **base), total), num)
    np.testing.assert_allclose(constant[:warmup], ramp, rtol=1e-6)
    np.testing.assert_allclose(constant[warmup:], peak, rtol=1e-7)

    linear = _steps(schedules.from_config(_config(kind="linear", **base), total), num)
    np.testing.assert_array_equal(linear, _steps(schedules.linear_decay(peak, total, warmup), num))

    cosine = _steps(schedules.from_config(_config(kind="cosine", **base), total), num)
    reference = optax.warmup_cosine_decay_schedule(0.0, peak, warmup, total)
    np.testing.assert_array_equal(cosine, _steps(reference, num))
    assert cosine[warmup] == np.float32(peak) and np.all(cosine[total:] == 0.0)

    g = np.random.default_rng(4).lognormal(size=total - warmup)
    for tau, power in ((0.0, 2), (0.4, 1)):
        config = _config(kind="refined", tau=tau, power=power, **base)
        refined = _steps(schedules.from_config(config, total, g), num)
        expected = _steps(schedules.refined(g, peak, warmup_steps=warmup, tau=tau, power=power), num)
        np.testing.assert_array_equal(refined, expected)
        np.testing.assert_allclose(refined[:warmup], ramp, rtol=1e-6)
        np.testing.assert_allclose(
            refined[warmup:total], peak * schedules.refinement_weights(g, tau=tau, power=power), rtol=1e-6
        )
    # tau and power default to 0 and 2, warmup_steps to 0.
    bare = schedules.from_config(_config(kind="refined", peak_value=peak), total, np.ones(total))
    np.testing.assert_allclose(_steps(bare, num), _steps(schedules.linear_decay(peak, total), num), rtol=1e-6, atol=1e-8)


def test_power_schedule_is_the_sa_srrw_step_size():
    """kind = "power": peak_value (s + offset)^-exponent, srrw.power_schedule at offset 2."""
    from jaxsampling.kernels import srrw

    config = _config(kind="power", peak_value=0.7, exponent=0.6)
    got = _steps(schedules.from_config(config, 50), 50)
    np.testing.assert_array_equal(got, _steps(srrw.power_schedule(0.6, 0.7), 50))
    np.testing.assert_allclose(got, 0.7 * (np.arange(50) + 2.0) ** -0.6, rtol=1e-6)
    shifted = _config(kind="power", peak_value=1.0, exponent=1.0, offset=1.0)
    np.testing.assert_allclose(_steps(schedules.from_config(shifted, 5), 5),
                               1.0 / (np.arange(5) + 1.0), rtol=1e-7)
    with pytest.raises(ValueError, match="no warmup_steps"):
        schedules.from_config(_config(kind="power", peak_value=1.0, exponent=1.0,
                                      warmup_steps=2), 10)
    for scale, exponent, offset in ((0.0, 1.0, 2.0), (1.0, -0.5, 2.0), (1.0, 1.0, 0.0)):
        with pytest.raises(ValueError, match="power decay needs"):
            schedules.power_decay(scale, exponent, offset)


def test_from_config_refined_needs_matching_norms():
    config = _config(kind="refined", peak_value=0.1, warmup_steps=2)
    for norms in (None, np.ones(9), np.ones(7), np.ones(10)):
        with pytest.raises(ValueError, match="the refined schedule needs the 8 gradient norms"):
            schedules.from_config(config, 10, norms)
    schedules.from_config(config, 10, np.ones(8))  # the right length
    with pytest.raises(ValueError, match="grad_norms"):
        schedules.from_config(config, 10, np.array([1.0, 2.0, -1.0, 1.0, 1.0, 1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="tau"):
        schedules.from_config(_config(kind="refined", peak_value=0.1, tau=2.0), 4, np.ones(4))
    with pytest.raises(ValueError, match="power"):
        schedules.from_config(_config(kind="refined", peak_value=0.1, power=3), 4, np.ones(4))


def test_from_config_bad_kind_and_steps():
    with pytest.raises(ValueError, match="unknown schedule kind 'exponential'"):
        schedules.from_config(_config(kind="exponential", peak_value=0.1), 10)
    for kind in schedules.KINDS:
        config = _config(kind=kind, peak_value=0.1, warmup_steps=0)
        for total in (0, -3, 2.5):
            with pytest.raises(ValueError, match="total_steps must be a positive integer"):
                schedules.from_config(config, total, np.ones(4))
        for warmup in (-1, 10, 11, 1.5):
            config = _config(kind=kind, peak_value=0.1, warmup_steps=warmup)
            with pytest.raises(ValueError, match=r"warmup_steps must be an integer in \[0, total_steps\)"):
                schedules.from_config(config, 10, np.ones(10))
    for total, warmup in ((0, 0), (5, 5), (5, -1), (3.5, 0)):
        with pytest.raises(ValueError, match="steps"):
            schedules.linear_decay(0.1, total, warmup)
    # numpy integers are accepted.
    schedules.linear_decay(0.1, np.int64(5), np.int32(1))


# ----------------------------------------------------------------------------
# optim.make.
# ----------------------------------------------------------------------------


def _optim_config(name, schedule, **extra):
    return ml_collections.ConfigDict(
        dict(name=name, kwargs=extra.pop("kwargs", {}), clip_norm=extra.pop("clip_norm", None),
             schedule=schedule)
    )


def _run_updates(optimizer, grad, num_steps):
    """The updates of num_steps jitted steps on f(p) = <a, p> (constant gradient)."""
    params = jnp.zeros_like(grad)
    state = optimizer.init(params)

    @jax.jit
    def step(params, state):
        g = jax.grad(lambda p: jnp.vdot(grad, p))(params)
        updates, state = optimizer.update(g, state, params)
        return optax.apply_updates(params, updates), state, updates

    out = []
    for _ in range(num_steps):
        params, state, updates = step(params, state)
        out.append(np.asarray(updates))
    assert step._cache_size() == 1
    return np.stack(out)


@pytest.mark.parametrize(
    "schedule_config, grad_norms",
    [
        (dict(kind="constant", peak_value=0.3, warmup_steps=2), None),
        (dict(kind="linear", peak_value=0.3, warmup_steps=2), None),
        (dict(kind="cosine", peak_value=0.3, warmup_steps=2), None),
        (dict(kind="refined", peak_value=0.3, warmup_steps=2, tau=0.0, power=2),
         np.array([1.0, 4.0, 0.5, 2.0, 1.0, 3.0])),
    ],
    ids=lambda v: v["kind"] if isinstance(v, dict) else "",
)
def test_sgd_uses_the_schedule(schedule_config, grad_norms):
    total = 8
    optimizer, schedule = optim.make(_optim_config("sgd", schedule_config), total, grad_norms)
    expected_schedule = schedules.from_config(
        ml_collections.ConfigDict(schedule_config), total, grad_norms
    )
    lrs = _steps(schedule, total + 2)
    np.testing.assert_array_equal(lrs, _steps(expected_schedule, total + 2))
    assert lrs[0] == 0.0 and lrs.max() == np.float32(0.3)  # warmup from 0, the peak
    grad = jnp.array([1.5, -2.0, 0.25])
    updates = _run_updates(optimizer, grad, total + 2)
    # atol: under jit XLA divides by optax's constant transition_steps as a
    # product with its float32 reciprocal, so the linear decay's last steps
    # read about -1e-8 * peak where eager reads 0.
    np.testing.assert_allclose(
        updates, -lrs[:, None] * np.asarray(grad)[None], rtol=1e-6, atol=1e-7
    )


def test_sgd_momentum_kwargs_are_passed():
    config = _optim_config(
        "sgd", dict(kind="constant", peak_value=0.1), kwargs=dict(momentum=0.9)
    )
    optimizer, _ = optim.make(config, 5)
    grad = jnp.array([1.0, -1.0])
    updates = _run_updates(optimizer, grad, 3)
    # Heavy ball: trace_t = g + 0.9 trace_{t-1}, update = -lr trace_t.
    factors = np.array([1.0, 1.9, 1.0 + 0.9 * 1.9])
    np.testing.assert_allclose(updates, -0.1 * factors[:, None] * np.asarray(grad)[None], rtol=1e-6)


def test_adam_uses_the_schedule():
    optimizer, schedule = optim.make(
        _optim_config("adam", dict(kind="linear", peak_value=0.01, warmup_steps=0), kwargs=dict(eps=0.0)),
        6,
    )
    grad = jnp.array([3.0, -0.5])
    updates = _run_updates(optimizer, grad, 6)
    # A constant gradient: bias-corrected m / sqrt(v) = sign(g) at every step.
    lrs = _steps(schedule, 6)
    # rtol: the float32 bias corrections 1 - b^t lose about 1e-5 to cancellation.
    np.testing.assert_allclose(
        updates, -lrs[:, None] * np.sign(np.asarray(grad))[None], rtol=1e-4, atol=1e-9
    )
    assert lrs[0] == np.float32(0.01) and lrs[-1] == 0.0


def test_clip_norm_clips_first():
    schedule = dict(kind="constant", peak_value=0.5, warmup_steps=0)
    grad = jnp.array([3.0, 4.0])  # global norm 5
    clipped, _ = optim.make(_optim_config("sgd", schedule, clip_norm=1.0), 4)
    updates = _run_updates(clipped, grad, 2)
    np.testing.assert_allclose(updates, -0.5 * np.array([[0.6, 0.8]] * 2), rtol=1e-6)
    # A clip above the norm changes nothing; no clip neither.
    loose, _ = optim.make(_optim_config("sgd", schedule, clip_norm=10.0), 4)
    np.testing.assert_allclose(_run_updates(loose, grad, 2), -0.5 * np.array([[3.0, 4.0]] * 2), rtol=1e-6)
    plain, _ = optim.make(_optim_config("sgd", schedule), 4)
    np.testing.assert_allclose(_run_updates(plain, grad, 2), -0.5 * np.array([[3.0, 4.0]] * 2), rtol=1e-6)


def test_make_bad_config():
    schedule = dict(kind="linear", peak_value=0.1, warmup_steps=0)
    for name in ("not_an_optimizer", "_src", "__init__", "__class__"):
        with pytest.raises(ValueError, match="unknown optax optimiser"):
            optim.make(_optim_config(name, schedule), 10)
    with pytest.raises(ValueError, match="unknown schedule kind"):
        optim.make(_optim_config("sgd", dict(kind="step", peak_value=0.1)), 10)
    with pytest.raises(ValueError, match="refined schedule needs"):
        optim.make(_optim_config("sgd", dict(kind="refined", peak_value=0.1)), 10)
    with pytest.raises(ValueError, match="total_steps"):
        optim.make(_optim_config("sgd", schedule), 0)
