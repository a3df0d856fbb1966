"""Tests for the smc_mixture experiment: exact target, end to end, resume, NaN stop."""

import math
import os

import numpy as np
import pytest

from jaxsampling.train import _blocks
from jaxsampling.train import smc_mixture as experiment
from tests.train import helpers


def small_config():
    config = helpers.load_config("smc_mixture")
    config.num_particles = 400  # every variant, one compilation each
    config.num_seeds = 4
    config.chain_length = 4
    config.max_steps = 40
    config.plot_grid_size = 41
    return config


def test_exact_posterior_matches_quadrature():
    prior, likelihood, posterior = experiment.make_problem(small_config())
    exact = experiment.exact_values(posterior)
    # The four modes sit at the same distance from the prior mean, so the
    # posterior keeps the likelihood's weights.
    np.testing.assert_allclose(exact["mode_weights"], [0.1, 0.2, 0.3, 0.4], rtol=1e-5)
    # Z = sum_k w_k N(mu_k; 0, (3^2 + 0.4^2) I) in closed form.
    var = 9.0 + 0.16
    z = math.exp(-8.0 / (2 * var)) / (2 * math.pi * var)  # the weights sum to 1
    assert exact["log_z"] == pytest.approx(math.log(z), rel=1e-5)
    # Against brute-force quadrature of prior x likelihood.
    xs, ys, density = experiment.density_grid(posterior, 6.0, 601)
    cell = float(xs[1] - xs[0]) ** 2
    assert density.sum() * cell == pytest.approx(1.0, abs=1e-4)
    axis = np.linspace(-6.0, 6.0, 601)
    xx, yy = np.meshgrid(axis, axis, indexing="ij")
    points = np.stack([xx, yy], -1).reshape(-1, 2)
    joint = np.exp(
        _blocks.mixture_log_density(prior, points)
        + _blocks.mixture_log_density(likelihood, points)
    )
    assert math.log(joint.sum() * cell) == pytest.approx(exact["log_z"], abs=1e-4)
    mean = (joint[:, None] * points).sum(0) / joint.sum()
    np.testing.assert_allclose(mean, exact["mean"], atol=1e-4)


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    return helpers.run_straight(tmp_path_factory, experiment, small_config())


def test_end_to_end_files_and_accuracy(straight_run):
    workdir, summary = straight_run
    config = small_config()
    rows = helpers.read_metrics(workdir)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert [r["variant"] for r in rows] == ["random_walk", "mala", "waste_free"]
    assert helpers.read_json(workdir, "summary.json") == summary
    assert summary["complete"]
    for row in summary["results"]:
        assert row["logz_rmse"] ** 2 == pytest.approx(
            row["logz_bias"] ** 2 + row["logz_std"] ** 2
        )
        # Loose sanity bounds (4 runs of 400 particles). Waste-free keeps only
        # N / P = 100 ancestors per step, so its errors are several times larger.
        loose = 3.0 if row["variant"] == "waste_free" else 1.0
        assert row["logz_rmse"] < 0.5 * loose
        assert row["mode_weight_tv"] < 0.2 * loose
        assert 1 <= row["num_steps"] <= config.max_steps
        assert 0.05 < row["acceptance"] < 0.95
        assert sum(row["estimated_mode_weights"]) == pytest.approx(1.0, abs=1e-4)
    by_variant = {r["variant"]: r for r in summary["results"]}
    assert by_variant["random_walk"]["proposals_per_particle"] == pytest.approx(
        by_variant["random_walk"]["num_steps"] * config.num_mcmc_steps
    )
    # particles.npz: one panel per variant, weights normalised, density on a grid.
    with np.load(os.path.join(workdir, "particles.npz")) as data:
        assert list(data["labels"]) == ["random_walk", "mala", "waste_free"]
        assert data["done"].all()
        assert data["positions"].shape == (3, config.num_particles, 2)
        np.testing.assert_allclose(data["weights"].sum(axis=1), 1.0, rtol=1e-4)
        assert data["density"].shape == (3, 41, 41)
        assert np.isfinite(data["positions"]).all()


def test_resume_gives_identical_summary(straight_run, tmp_path):
    workdir = str(tmp_path / "resumed")
    helpers.run_killed_after(
        experiment, small_config(), workdir, blocks=1, num_results=1
    )
    with np.load(os.path.join(workdir, "particles.npz")) as data:
        assert data["done"].tolist() == [True, False, False]
    helpers.assert_resume_matches_straight_run(
        experiment, small_config, workdir, straight_run, npz=True
    )


def test_non_finite_estimate_raises_and_keeps_last_checkpoint(straight_run, tmp_path):
    helpers.assert_nan_in_block_1_stops_then_resumes(
        experiment, small_config, str(tmp_path / "nan"), straight_run[1],
        patch="run_samplers", output=0, index=0,
        match="non-finite log-evidence.*block 1",
    )


def test_resume_with_other_config_raises(straight_run, tmp_path):
    helpers.assert_other_config_refused(
        experiment, small_config, str(tmp_path / "other"), target_ess=0.7
    )


def test_bad_variant_and_chain_length():
    helpers.assert_config_rejected(
        experiment.make_variants, small_config(), "unknown variant 'hmc'",
        variants=("random_walk", "hmc"),
    )
    helpers.assert_config_rejected(
        experiment.make_variants, small_config(), "chain_length", chain_length=7
    )


def test_registry():
    helpers.assert_registered("smc_mixture", experiment)
