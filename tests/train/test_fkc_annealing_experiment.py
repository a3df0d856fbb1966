"""Tests for the fkc_annealing experiment: exact targets, end to end, resume."""

import os

import jax.numpy as jnp
import numpy as np
import pytest

from jaxsampling.kernels.smc import mixtures
from jaxsampling.train import fkc_annealing as experiment
from tests.train import helpers


def small_config():
    config = helpers.load_config("fkc_annealing")
    config.variants = ("fkc", "uncorrected")  # 4 compilations; killing below
    config.num_particles = 256
    config.num_steps = 100
    config.num_seeds = 4
    config.grid_size = 301
    config.plot_grid_size = 41
    return config


def test_exact_targets():
    config = small_config()
    annealing = experiment.make_task("annealing", config)
    # Separated modes of equal width: p^beta has mode weights ~ w_k^beta.
    w = np.asarray(config.mode_weights) ** config.beta
    np.testing.assert_allclose(annealing.exact["mode_weights"], w / w.sum(), atol=1e-4)
    # Each mode of p^beta is N(mu_k, (0.4^2 + 0.01^2) / beta I): spread 2 var.
    spread = 2 * (0.4**2 + 0.01**2) / config.beta
    assert annealing.exact["spread"] == pytest.approx(spread, rel=1e-3)
    assert sum(annealing.exact["mode_weights"]) == pytest.approx(1.0)

    product = experiment.make_task("product", config)
    assert len(product.centres) == 3  # the shared mode, the compromise, a cross term
    # Quadrature of the product density (evaluated by jax, an independent path)
    # agrees with the product mixture's exact moments and the numpy mode weights.
    first = mixtures.GaussianMixture(
        jnp.array([0.2, 0.8]), jnp.array([[-1.5, -1.5], [1.5, 1.5]]), jnp.full(2, 0.8)
    )
    second = first._replace(means=jnp.array([[-1.5, -1.5], [1.5, -1.5]]))
    prod = mixtures.product(first.noised(0.01), second.noised(0.01))
    np.testing.assert_allclose(product.exact["mean"], prod.mean(), atol=1e-5)
    quad = experiment.quadrature(
        lambda x: np.asarray(prod.log_density(jnp.asarray(x))),
        product.centres,
        config.grid_half_width,
        config.grid_size,
    )
    np.testing.assert_allclose(quad["mean"], product.exact["mean"], atol=1e-4)
    np.testing.assert_allclose(
        quad["second_moment"], product.exact["second_moment"], atol=1e-3
    )
    np.testing.assert_allclose(
        quad["mode_weights"], product.exact["mode_weights"], atol=1e-4
    )
    xs, ys, density = product.density
    cell = float(xs[1] - xs[0]) ** 2
    assert density.sum() * cell == pytest.approx(1.0, abs=1e-6)


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    return helpers.run_straight(tmp_path_factory, experiment, small_config())


def test_end_to_end_files_and_bias(straight_run):
    workdir, summary = straight_run
    config = small_config()
    blocks = experiment.make_blocks(config)
    rows = helpers.read_metrics(workdir)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert [(r["task"], r["variant"]) for r in rows] == [tuple(b) for b in blocks]
    assert helpers.read_json(workdir, "summary.json") == summary
    assert summary["complete"]
    assert set(summary["exact"]) == {"annealing", "product"}
    results = {(r["task"], r["variant"]): r for r in summary["results"]}
    for (task, variant), row in results.items():
        k = len(summary["exact"][task]["mode_weights"])
        assert len(row["estimated_mode_weights"]) == k
        assert sum(row["estimated_mode_weights"]) == pytest.approx(1.0, abs=1e-4)
        if variant == "uncorrected":
            assert row["resampling_steps"] == 0 and row["ess_log_loss"] == 0.0
        else:
            assert row["resampling_steps"] == config.num_steps
            assert row["ess_log_loss"] > 0.0
    # Without weights the product-of-experts SDE piles mass on the compromise
    # mode: a large mode-weight bias that the FK weights remove.
    assert results[("product", "uncorrected")]["mode_weight_bias_tv"] > 0.3
    assert (
        results[("product", "fkc")]["mode_weight_tv"]
        < 0.5 * results[("product", "uncorrected")]["mode_weight_tv"]
    )
    # Without weights the tempered-noise SDE (drift s, noise Delta / beta) keeps
    # the unannealed mode weights and mis-sizes the modes; the FK weights fix both.
    plain, fkc = results[("annealing", "uncorrected")], results[("annealing", "fkc")]
    assert plain["mode_weight_bias_tv"] > 0.15
    assert fkc["mode_weight_bias_tv"] < 0.5 * plain["mode_weight_bias_tv"]
    assert abs(plain["spread_rel_error"]) > 0.25
    assert abs(fkc["spread_rel_error"]) < 0.5 * abs(plain["spread_rel_error"])
    with np.load(os.path.join(workdir, "particles.npz")) as data:
        assert list(data["labels"]) == [f"{t}: {v}" for t, v in blocks]
        assert data["done"].all()
        assert data["positions"].shape == (4, config.num_particles, 2)
        np.testing.assert_allclose(data["weights"].sum(axis=1), 1.0, rtol=1e-4)
        assert data["density"].shape == (4, 41, 41)


def test_resume_gives_identical_summary(straight_run, tmp_path):
    workdir = str(tmp_path / "resumed")
    helpers.run_killed_after(
        experiment, small_config(), workdir, blocks=3, num_results=3
    )
    helpers.assert_resume_matches_straight_run(
        experiment, small_config, workdir, straight_run, npz=True
    )


def test_non_finite_estimate_raises_and_keeps_last_checkpoint(straight_run, tmp_path):
    helpers.assert_nan_in_block_1_stops_then_resumes(
        experiment, small_config, str(tmp_path / "nan"), straight_run[1],
        patch="run_samplers", output=1, index=(0, 0),
        match="non-finite mean.*block 1",
    )


def test_killing_variant(tmp_path):
    config = small_config()
    config.tasks = ("product",)
    config.variants = ("fkc_killing",)
    summary = experiment.train_and_evaluate(config, str(tmp_path))
    (row,) = summary["results"]
    assert row["resampling_steps"] == config.num_steps
    assert np.isfinite(row["mode_weight_tv"]) and row["mode_weight_tv"] < 0.3


def test_resume_with_other_config_raises(straight_run, tmp_path):
    helpers.assert_other_config_refused(
        experiment, small_config, str(tmp_path / "other"), beta=5.0
    )


def test_bad_names():
    helpers.assert_config_rejected(
        experiment.make_blocks, small_config(), "unknown task 'guidance'",
        tasks=("annealing", "guidance"),
    )
    helpers.assert_config_rejected(
        experiment.make_blocks, small_config(), "unknown variant 'svdd'",
        variants=("fkc", "svdd"),
    )


def test_registry():
    helpers.assert_registered("fkc_annealing", experiment)
