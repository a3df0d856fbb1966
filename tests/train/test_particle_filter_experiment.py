"""Tests for the particle_filter experiment: end to end, resume, NaN stop, registry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsampling.train import kalman
from jaxsampling.train import particle_filter as experiment
from tests.train import helpers


def small_config():
    config = helpers.load_config("particle_filter")
    config.num_particles = (100, 1000)  # compilation dominates: 4 programs
    config.num_seeds = 16
    config.T = 20
    return config


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    return helpers.run_straight(tmp_path_factory, experiment, small_config())


def test_end_to_end_files_and_accuracy(straight_run):
    workdir, summary = straight_run
    config = small_config()
    blocks = experiment.make_blocks(config)
    assert blocks == [
        ("bootstrap", 100),
        ("bootstrap", 1000),
        ("guided", 100),
        ("guided", 1000),
    ]
    config_json = helpers.read_json(workdir, "config.json")
    assert config_json["experiment"] == "particle_filter"
    rows = helpers.read_metrics(workdir)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    cells = [(r["filter"], r["num_particles"]) for r in rows]
    assert cells == [tuple(b) for b in blocks]
    assert helpers.read_json(workdir, "summary.json") == summary
    assert summary["complete"]
    params = kalman.LGSSM(config.rho, config.sigma_x, config.sigma_y)
    _, ys = kalman.simulate(jax.random.key(config.data_seed), params, config.T)
    assert summary["loglik_exact"] == pytest.approx(
        float(kalman.dense_log_likelihood(params, ys)), abs=1e-3
    )

    results = {(r["filter"], r["num_particles"]): r for r in summary["results"]}
    for row in results.values():
        assert row["rmse"] ** 2 == pytest.approx(row["bias"] ** 2 + row["std"] ** 2)
        assert 0 <= row["mean_resampling_steps"] <= config.T
        # Natural-scale unbiasedness: E[exp(err)] = 1, within 5 standard errors.
        assert abs(row["mean_ratio"] - 1.0) < 5 * row["ratio_se"] + 0.05
    for kind in ("bootstrap", "guided"):
        small, big = results[(kind, 100)], results[(kind, 1000)]
        # Both errors shrink like N^-1/2 (a factor ~3.2 here); ask for 1.5.
        assert big["rmse"] < small["rmse"] / 1.5
        assert big["filter_mean_rmse"] < small["filter_mean_rmse"] / 1.5
    for n in (100, 1000):
        # The optimal proposal has much lower weight variance: a smaller error
        # and fewer resampling steps than the bootstrap filter.
        assert results[("guided", n)]["rmse"] < results[("bootstrap", n)]["rmse"]
        assert (
            results[("guided", n)]["mean_resampling_steps"]
            < results[("bootstrap", n)]["mean_resampling_steps"]
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
        experiment, small_config, str(tmp_path / "other"), num_seeds=8
    )


def test_run_filters_shapes():
    # Same static arguments and shapes as small_config(): shares its compilation.
    params = kalman.LGSSM(0.9, 1.0, 1.0)
    _, ys = kalman.simulate(jax.random.key(0), params, 20)
    _, means = kalman.kalman_filter(params, ys)
    keys = jax.random.split(jax.random.key(1), 16)
    kwargs = dict(
        params=params,
        kind="guided",
        num_particles=100,
        scheme="systematic",
        ess_threshold=0.5,
        batch_size=None,
    )
    ll, mse, counts = experiment.run_filters(keys, ys, means, **kwargs)
    assert ll.shape == mse.shape == counts.shape == (16,)
    assert counts.dtype == jnp.int32
    assert np.all(np.isfinite(np.asarray(ll))) and np.all(np.asarray(mse) >= 0)


def test_bad_names():
    helpers.assert_config_rejected(
        experiment.make_blocks, small_config(), "unknown filter 'nope'",
        filters=("bootstrap", "nope"),
    )
    helpers.assert_config_rejected(
        experiment.make_blocks, small_config(), "unknown resampling scheme 'nope'",
        scheme="nope",
    )


def test_registry():
    helpers.assert_registered("particle_filter", experiment)
