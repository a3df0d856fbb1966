"""Tests for the resampling experiment: Kalman reference, end to end, resume."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsampling import train
from jaxsampling.train import kalman
from jaxsampling.train import resampling as experiment
from tests.train import helpers


def small_config():
    config = helpers.load_config("resampling")
    config.schemes = ("systematic",)  # compilation dominates: one scheme, two sizes
    config.num_particles = (100, 1000)
    config.num_seeds = 8
    config.T = 20
    return config


@pytest.mark.parametrize(
    "rho,sigma_x,sigma_y,T",
    [(0.9, 1.0, 1.0, 8), (0.5, 0.7, 0.3, 8), (-0.8, 2.0, 1.5, 5)],
)
def test_kalman_matches_dense_gaussian(rho, sigma_x, sigma_y, T):
    params = kalman.LGSSM(rho, sigma_x, sigma_y)
    _, ys = kalman.simulate(jax.random.key(T), params, T)
    exact = kalman.kalman_log_likelihood(params, ys)
    dense = kalman.dense_log_likelihood(params, ys)
    # float32: both sums are O(T) terms of size O(1); 1e-5 relative each.
    np.testing.assert_allclose(exact, dense, rtol=1e-5, atol=1e-4 * T)
    # And against numpy float64.
    t = np.arange(T)
    cov = params.stationary_var * rho ** np.abs(
        t[:, None] - t[None, :]
    ) + sigma_y**2 * np.eye(T)
    y = np.asarray(ys, np.float64)
    _, logdet = np.linalg.slogdet(cov)
    ref = -0.5 * (T * np.log(2 * np.pi) + logdet + y @ np.linalg.solve(cov, y))
    np.testing.assert_allclose(float(exact), ref, rtol=1e-5, atol=1e-4 * T)


def test_particle_filter_many_particles_is_close():
    params = kalman.LGSSM(0.9, 1.0, 1.0)
    _, ys = kalman.simulate(jax.random.key(0), params, 20)
    exact = float(kalman.kalman_log_likelihood(params, ys))
    keys = jax.random.split(jax.random.key(1), 8)
    # Same static arguments and shapes as small_config(): shares its compilation.
    ll, counts = experiment.run_filters(
        keys, params, ys, jnp.float32(0.5), num_particles=100, scheme="systematic"
    )
    assert ll.shape == (8,) and counts.dtype == jnp.int32
    assert np.all(np.abs(np.asarray(ll) - exact) < 2.0)
    assert np.all((np.asarray(counts) >= 0) & (np.asarray(counts) <= 20))


def test_batched_seeds_match_one_vmap():
    params = kalman.LGSSM(0.9, 1.0, 1.0)
    _, ys = kalman.simulate(jax.random.key(0), params, 20)
    keys = jax.random.split(jax.random.key(1), 8)
    kwargs = dict(num_particles=100, scheme="systematic")
    full = experiment.run_filters(keys, params, ys, jnp.float32(0.5), **kwargs)
    batched = experiment.run_filters(
        keys, params, ys, jnp.float32(0.5), batch_size=4, **kwargs
    )
    np.testing.assert_array_equal(full[1], batched[1])
    np.testing.assert_allclose(full[0], batched[0], rtol=1e-5)


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    return helpers.run_straight(tmp_path_factory, experiment, small_config())


def test_end_to_end_files_and_accuracy(straight_run):
    workdir, summary = straight_run
    config = small_config()
    blocks = experiment.make_blocks(config)
    assert len(blocks) == 4
    assert helpers.read_json(workdir, "config.json")["num_seeds"] == 8
    rows = helpers.read_metrics(workdir)
    assert [r["step"] for r in rows] == list(range(1, 5))
    assert [(r["scheme"], r["num_particles"], r["mode"]) for r in rows] == [
        tuple(b) for b in blocks
    ]
    assert helpers.read_json(workdir, "summary.json") == summary
    assert summary["complete"]
    exact = summary["loglik_exact"]
    params = kalman.LGSSM(config.rho, config.sigma_x, config.sigma_y)
    _, ys = kalman.simulate(jax.random.key(config.data_seed), params, config.T)
    assert exact == pytest.approx(
        float(kalman.dense_log_likelihood(params, ys)), abs=1e-3
    )

    results = {
        (r["scheme"], r["num_particles"], r["mode"]): r for r in summary["results"]
    }
    for scheme in config.schemes:
        for mode in ("always", "adaptive"):
            small, big = results[(scheme, 100, mode)], results[(scheme, 1000, mode)]
            assert np.isfinite([small["rmse"], big["rmse"]]).all()
            assert big["rmse"] < 1.0
            assert big["rmse"] < small["rmse"]  # ~sqrt(10) smaller in expectation
            assert big["rmse"] ** 2 == pytest.approx(big["bias"] ** 2 + big["std"] ** 2)
        assert results[(scheme, 100, "always")]["mean_resampling_steps"] == config.T
        assert (
            0 < results[(scheme, 1000, "adaptive")]["mean_resampling_steps"] < config.T
        )


def test_resume_gives_identical_summary(straight_run, tmp_path):
    workdir = str(tmp_path / "resumed")
    helpers.run_killed_after(
        experiment, small_config(), workdir, blocks=2, num_results=2
    )
    helpers.assert_resume_matches_straight_run(
        experiment, small_config, workdir, straight_run
    )


def test_non_finite_estimate_raises_and_keeps_last_checkpoint(straight_run, tmp_path):
    helpers.assert_nan_in_block_1_stops_then_resumes(
        experiment, small_config, str(tmp_path / "nan"), straight_run[1],
        patch="run_filters", output=0, index=0,
        match="non-finite log-likelihood.*block 1",
    )


def test_resume_with_other_config_raises(straight_run, tmp_path):
    helpers.assert_other_config_refused(
        experiment, small_config, str(tmp_path / "other"), num_seeds=4
    )


def test_bad_scheme_and_mode():
    helpers.assert_config_rejected(
        experiment.make_blocks, small_config(), "unknown resampling scheme 'nope'",
        schemes=("systematic", "nope"),
    )
    helpers.assert_config_rejected(
        experiment.make_blocks, small_config(), "unknown mode", modes=("sometimes",)
    )


def test_registry():
    helpers.assert_registered("resampling", experiment)
    with pytest.raises(
        ValueError,
        match=r"unknown experiment 'nope'; known: \['coreset_training', 'dpp_wls', "
        r"'fkc_annealing', 'lp_coreset', 'ntk_permutation', 'particle_filter', 'resampling', "
        r"'rs2', 'smc_mixture', 'srrw_sampling', 'srrw_token'\]",
    ):
        train.get("nope")
