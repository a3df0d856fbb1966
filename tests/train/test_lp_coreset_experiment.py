"""Tests for the lp_coreset experiment: sampling, end to end, resume, NaN stop."""

import jax
import numpy as np
import pytest

from jaxsampling.kernels import leverage
from jaxsampling.train import lp_coreset as experiment
from tests.train import helpers


def small_config():
    config = helpers.load_config("lp_coreset")
    # Compilation dominates: 3 probability programs (uniform, leverage, l_1
    # Lewis), one draw, one evaluation and one reference per p.
    config.num_rows = 10_000
    config.num_cols = 8
    config.p_values = (1.0, 2.0)
    config.methods = ("uniform", "leverage", "lewis")
    config.cross_cells = (("lewis", 1.0, 2.0),)
    config.sizes = (100, 500)
    config.num_seeds = 4
    config.num_random_directions = 16
    config.num_row_directions = 16
    config.num_sampled_directions = 8
    config.seeds_per_batch = 0
    return config


def test_blocks_labels_and_canonical_probabilities():
    cells = experiment.make_blocks(small_config())
    assert [(c.p, c.method, c.sampling_p) for c in cells] == [
        (1.0, "uniform", 1.0),
        (1.0, "leverage", 1.0),
        (1.0, "lewis", 1.0),
        (2.0, "uniform", 2.0),
        (2.0, "leverage", 2.0),
        (2.0, "lewis", 2.0),
        (2.0, "lewis", 1.0),
    ]
    assert [experiment.label(c) for c in cells][-2:] == ["lewis", "lewis (p=1)"]
    # p-free methods share one program; at p = 2 Lewis weights are leverage scores.
    assert experiment.canonical(cells[0]) == ("uniform", 2.0)
    assert experiment.canonical(cells[1]) == ("leverage", 2.0)
    assert experiment.canonical(cells[2]) == ("lewis", 1.0)
    assert experiment.canonical(cells[5]) == ("leverage", 2.0)
    assert experiment.canonical(cells[6]) == ("lewis", 1.0)


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    return helpers.run_straight(tmp_path_factory, experiment, small_config())


def test_end_to_end_files_and_picture(straight_run):
    workdir, summary = straight_run
    rows = helpers.read_metrics(workdir)
    assert [r["step"] for r in rows] == list(range(1, 8))
    assert [(r["p"], r["method"]) for r in rows][-2:] == [
        (2.0, "lewis"),
        (2.0, "lewis (p=1)"),
    ]
    assert all(r["sizes"] == [100, 500] and len(r["distortion"]) == 2 for r in rows)
    assert helpers.read_json(workdir, "summary.json") == summary
    assert summary["complete"] and len(summary["results"]) == 7 * 2
    assert set(summary["optimum"]) == {"1", "2"}
    res = {(r["p"], r["method"], r["m"]): r for r in summary["results"]}
    for r in summary["results"]:
        assert r["overflows"] == 0
        assert abs(r["sample_size"] - r["m"]) < 6 * np.sqrt(r["m"])
        assert r["distortion_q25"] <= r["distortion"] <= r["distortion_q75"]
        # The search only adds directions; it is a lower bound of the exact
        # value at p = 2 and close to it (the worst direction is found).
        assert r["distortion_search"] >= r["distortion_start"] - 1e-6
        if r["p"] == 2.0:
            assert r["distortion_exact"]
            assert r["distortion_search"] <= r["distortion"] * (1 + 1e-4) + 1e-6
            assert r["distortion_search"] >= 0.8 * r["distortion"]
        else:
            assert not r["distortion_exact"]
            assert r["distortion"] == r["distortion_search"]
        # x* minimises the full-data residual: coresets cannot beat it (up to
        # float32 IRLS slack).
        assert r["regression_error"] > -1e-3
    for m in (100, 500):
        # Heavy tails: uniform sampling misses or over-weights the few rows
        # that carry the column space; leverage sampling keeps them.
        uniform, lev = res[(2.0, "uniform", m)], res[(2.0, "leverage", m)]
        assert lev["distortion"] < uniform["distortion"] / 3
        assert lev["regression_error"] < uniform["regression_error"]
        # At p = 1 the l_1 Lewis weights beat uniform sampling too.
        lewis_1, uniform_1 = res[(1.0, "lewis", m)], res[(1.0, "uniform", m)]
        assert lewis_1["distortion"] < uniform_1["distortion"]
    lev_small, lev_big = res[(2.0, "leverage", 100)], res[(2.0, "leverage", 500)]
    assert lev_big["distortion"] < lev_small["distortion"]
    assert lev_big["regression_error"] < lev_small["regression_error"]


def test_draw_matches_kernel_coreset(straight_run):
    """The samples are leverage.coreset's, with the l_p weights pi^(-1/p).

    Runs after the straight run, so the experiment's programs are compiled.
    """
    config = small_config()
    problem = experiment.make_problem(config)
    A, b = problem.A, problem.b
    sizes, p = tuple(config.sizes), 3.0
    capacity = leverage.default_capacity(sizes[-1])
    q_A, q_Ab = experiment.probabilities(
        A, b, method="leverage", p=2.0, lewis_tol=config.lewis_tol
    )
    keys = jax.random.split(jax.random.key(7), len(sizes) * config.num_seeds)
    keys = keys.reshape(len(sizes), config.num_seeds)
    s_A, s_Ab = experiment.draw(keys, q_A, q_Ab, sizes=sizes, capacity=capacity)
    s_A, s_Ab = (
        experiment.reweight(jax.tree.map(lambda x: x[0, 0], s), p) for s in (s_A, s_Ab)
    )
    key_A, key_Ab = jax.random.split(keys[0, 0])
    coreset = jax.jit(
        lambda key, A, b: leverage.coreset(
            key, A, b, m=sizes[0], p=p, method="leverage", capacity=capacity
        )
    )
    cs = coreset(key_Ab, A, b)
    np.testing.assert_array_equal(s_Ab.indices, cs.sample.indices)
    np.testing.assert_allclose(s_Ab.weights, cs.sample.weights, rtol=1e-5)
    assert int(s_Ab.count) == int(cs.sample.count)
    # The probabilities of the orthonormal basis are those of [A, b] (and A).
    np.testing.assert_allclose(q_Ab, cs.probabilities, rtol=1e-4)
    tau = leverage.leverage_scores(A)
    np.testing.assert_allclose(q_A, tau / config.num_cols, rtol=1e-4)
    # The A sample: Bernoulli(pi) rows with weights pi^(-1/p).
    pi = np.asarray(leverage.inclusion_probabilities(q_A, sizes[0]))
    count = int(s_A.count)
    kept = np.asarray(s_A.indices)[:count]
    assert np.all(np.diff(kept) > 0) and not np.asarray(s_A.mask)[count:].any()
    np.testing.assert_allclose(
        np.asarray(s_A.weights)[:count], pi[kept] ** (-1 / p), rtol=1e-5
    )


def test_resume_gives_identical_summary(straight_run, tmp_path):
    workdir = str(tmp_path / "resumed")
    partial = helpers.run_killed_after(
        experiment, small_config(), workdir, blocks=2, num_results=2 * 2
    )
    assert partial["results"] == straight_run[1]["results"][:4]
    helpers.assert_resume_matches_straight_run(
        experiment, small_config, workdir, straight_run
    )


def test_non_finite_distortion_raises_and_keeps_last_checkpoint(
    straight_run, tmp_path
):
    helpers.assert_nan_in_block_1_stops_then_resumes(
        experiment, small_config, str(tmp_path / "nan"), straight_run[1],
        patch="evaluate", output=0, index=0,
        match="non-finite distortion in block 1",
    )


def test_resume_with_other_config_raises(straight_run, tmp_path):
    helpers.assert_other_config_refused(
        experiment, small_config, str(tmp_path / "other"), opt_steps=5
    )


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("methods", ("uniform", "magic"), "unknown method 'magic'"),
        ("p_values", (0.5,), "p must be a finite number >= 1"),
        ("sizes", (500, 100), "sizes must be increasing"),
        ("sizes", (100, 20_000), "sizes must be increasing"),
        ("sizes", (4, 100), "sizes must be increasing"),
        ("num_optimised", 3, "num_optimised"),
        ("cross_cells", (("lewis", 1.0),), "a cross cell is"),
        ("cross_cells", (("lewis", 1.0, 1.0),), "duplicate cells"),
    ],
)
def test_bad_config(field, value, match):
    helpers.assert_config_rejected(
        experiment.make_blocks, small_config(), match, **{field: value}
    )


def test_registry():
    helpers.assert_registered("lp_coreset", experiment)
