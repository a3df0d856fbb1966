"""Coreset training: references, weights, end to end, resume, NaN stop."""

import numpy as np
import pytest

from jaxsampling.train import coreset_training as ct
from tests.train.helpers import load_config


def small_config():
    config = load_config("coreset_training")
    config.num_rows = 1600
    config.num_cols = 4
    config.sizes = (64, 512)
    config.num_seeds = 3
    config.methods = ("uniform", "lewis")
    config.train.num_steps = 200
    config.train.steps_per_call = 100
    config.train.checkpoint_every = 100
    config.train.eval_every = 100
    return config



@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("coreset"))
    return workdir, ct.train_and_evaluate(small_config(), workdir)


@pytest.mark.parametrize("name", ct.PROBLEMS)
def test_optimum_is_a_minimum(name):
    problem = ct.make_problem(name, 500, 3, 0)
    theta, best = ct.optimum(name, problem, 1e-3)
    rng = np.random.default_rng(0)
    for scale in (1e-1, 1e-3):
        nearby = theta + scale * rng.normal(size=(50, 3))
        assert np.all(ct.full_loss(name, problem, nearby, 1e-3) >= best - 1e-12)


def test_coreset_loss_is_unbiased():
    """E over coresets of the weighted loss equals the full loss (exact expectation)."""
    problem = ct.make_problem("l1", 300, 3, 1)
    q = ct.probabilities("l1", problem, "lewis", 0.5)
    assert np.isclose(q.sum(), 1.0) and np.all(q > 0)
    theta = np.array([0.3, -0.2, 0.1])
    losses = np.abs(problem["a"] @ theta - problem["y"])
    # One draw's weighted loss has mean sum_i q_i * l_i / (n q_i) = mean(l).
    assert np.isclose(np.sum(q * losses / (300 * q)), losses.mean())


def test_end_to_end(straight):
    _, summary = straight
    assert summary["complete"]
    rows = {(r["problem"], r["method"], r["m"]): r for r in summary["results"]}
    for name in ct.PROBLEMS:
        full = rows[(name, "full", 1600)]
        # The loop itself reaches the full-data optimum.
        assert full["gap_mean"] < 1e-3, full
        for method in ("uniform", "lewis"):
            small, large = rows[(name, method, 64)], rows[(name, method, 512)]
            assert 0 <= large["gap_mean"] < small["gap_mean"], (small, large)
            assert large["gap_mean"] < 0.05


def test_resume_matches_straight_run(straight, tmp_path):
    _, expected = straight
    config = small_config()
    config.stop_after_steps = 100
    partial = ct.train_and_evaluate(config, str(tmp_path))
    assert not partial["complete"]
    assert ct.train_and_evaluate(small_config(), str(tmp_path)) == expected


def test_non_finite_loss_stops(tmp_path):
    config = small_config()
    config.problems = ("l1",)
    config.train.optimizer.name = "sgd"
    config.train.optimizer.schedule.peak_value = 1e38
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        ct.train_and_evaluate(config, str(tmp_path))


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("problems", ("svm",), "unknown problem"),
        ("methods", ("best",), "unknown method"),
        ("sizes", (0,), "sizes"),
        ("num_seeds", 0, "num_seeds"),
        ("uniform_mix", 2.0, "uniform_mix"),
    ],
)
def test_bad_config(tmp_path, field, value, match):
    config = small_config()
    setattr(config, field, value)
    with pytest.raises(ValueError, match=match):
        ct.train_and_evaluate(config, str(tmp_path))


def test_registry():
    from tests.train import helpers

    helpers.assert_registered("coreset_training", ct)
