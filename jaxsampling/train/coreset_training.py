r"""Coreset training: logistic and l_1 regression fitted on importance-sampled rows.

A coreset replaces the loss over ``n`` rows by a weighted loss over ``m``
rows sampled with probabilities :math:`q_i`,

.. math::

    \hat L(\theta) = \frac{1}{n} \sum_{j=1}^{m} \frac{\ell_{i_j}(\theta)}{m q_{i_j}},
    \qquad E \hat L(\theta) = L(\theta) = \frac{1}{n} \sum_{i=1}^n \ell_i(\theta),

and good :math:`q` (sensitivities) make :math:`\hat L \approx L` uniformly
in :math:`\theta`, so that the coreset's minimiser is nearly optimal for the
full data. Here the rows are drawn with replacement
(:func:`jaxsampling.kernels.leverage.sample_rows`) from

* ``uniform``: :math:`q_i = 1/n`;
* ``root_leverage``: :math:`\sqrt{\tau_i}` of the design (Munteanu et al.,
  "On Coresets for Logistic Regression", 2018);
* ``lewis``: the :math:`\ell_1` Lewis weights (Mai, Musco and Rao,
  "Coresets for Classification -- Simplified and Strengthened", 2021, for
  logistic loss; Cohen and Peng for :math:`\ell_1` regression);
* ``leverage``: the :math:`\ell_2` leverage scores;

each mixed half-and-half with uniform (``uniform_mix``), which bounds the
weights of rows whose scores are tiny.

Problems (synthetic, heavy-tailed, so that uniform sampling misses the rows
that matter): ``logistic`` (L2-regularised logistic regression; the scores
are those of the rows :math:`y_i x_i`) and ``l1`` (least absolute deviations;
the scores are those of :math:`[A, b]`). The full-data optimum :math:`L^*` is
computed in float64 by scipy (L-BFGS for logistic, the HiGHS linear program
for :math:`\ell_1`).

Every coreset is trained by the shared loop (:func:`jaxsampling.train.loop.fit`,
full-batch, ``fixed_batch``), all methods and seeds of one size ``m`` in one
run (their parameters stacked), and so is the full data (``full``: the
optimiser's own gap). Reported per (problem, method, m): the relative loss
gap :math:`(L(\hat\theta) - L^*) / L^*` on the full data (mean, its standard
error and the median over seeds).

Run it from the repository root::

    python -m jaxsampling.main --config=configs/coreset_training.py --workdir=runs/coreset_training
"""

from __future__ import annotations

import math
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import scipy.optimize

from jaxsampling import metrics as metrics_lib
from jaxsampling.kernels import leverage
from jaxsampling.train import _blocks, loop

PROBLEMS = ("logistic", "l1")
METHODS = ("uniform", "root_leverage", "lewis", "leverage")


def make_problem(name: str, n: int, d: int, seed: int) -> dict:
    """The design ``a[n, d]`` (intercept last), targets and true parameters, float64."""
    rng = np.random.default_rng([seed, PROBLEMS.index(name)])
    features = rng.standard_t(2.0, (n, d - 1))
    a = np.c_[features, np.ones(n)]
    theta = rng.normal(size=d) / np.sqrt(d)
    if name == "logistic":
        margin = a @ theta
        y = np.where(rng.random(n) < 1 / (1 + np.exp(-margin)), 1.0, -1.0)
        return {"a": a, "y": y, "theta": theta}
    if name == "l1":
        b = a @ theta + rng.standard_t(1.5, n)
        return {"a": a, "y": b, "theta": theta}
    raise ValueError(f"unknown problem {name!r}; known: {PROBLEMS}")


def full_loss(name: str, problem: dict, theta: np.ndarray, l2: float) -> np.ndarray:
    """The full-data mean loss at ``theta[..., d]`` (float64)."""
    a, y = problem["a"], problem["y"]
    theta = np.asarray(theta, np.float64)
    z = theta @ a.T  # [..., n]
    if name == "logistic":
        return np.mean(np.logaddexp(0.0, -y * z), axis=-1) + 0.5 * l2 * np.sum(theta**2, -1)
    return np.mean(np.abs(z - y), axis=-1)


def optimum(name: str, problem: dict, l2: float) -> tuple[np.ndarray, float]:
    """The full-data minimiser and minimum, in float64."""
    a, y = problem["a"], problem["y"]
    n, d = a.shape
    if name == "logistic":
        def value_and_grad(theta):
            z = y * (a @ theta)
            value = np.mean(np.logaddexp(0.0, -z)) + 0.5 * l2 * theta @ theta
            grad = -(a.T @ (y * scipy.special.expit(-z))) / n + l2 * theta
            return value, grad

        result = scipy.optimize.minimize(
            value_and_grad, np.zeros(d), jac=True, method="L-BFGS-B",
            options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 10_000},
        )
        theta = result.x
    else:
        # min sum(u + v) s.t. a theta + u - v = y, u, v >= 0.
        cost = np.r_[np.zeros(d), np.ones(2 * n)]
        equality = scipy.sparse.hstack(
            [scipy.sparse.csr_matrix(a), scipy.sparse.eye(n), -scipy.sparse.eye(n)]
        )
        bounds = [(None, None)] * d + [(0, None)] * (2 * n)
        result = scipy.optimize.linprog(cost, A_eq=equality, b_eq=y, bounds=bounds, method="highs")
        theta = result.x[:d]
    return theta, float(full_loss(name, problem, theta, l2))


def probabilities(name: str, problem: dict, method: str, mix: float) -> np.ndarray:
    """Sampling probabilities ``q[n]``: the method's scores mixed with uniform."""
    a, y = problem["a"], problem["y"]
    n = a.shape[0]
    if method == "uniform":
        return np.full(n, 1.0 / n)
    rows = a * y[:, None] if name == "logistic" else np.c_[a, y]
    q = np.asarray(
        leverage.sampling_probabilities(jnp.asarray(rows, jnp.float32), 1.0, method), np.float64
    )
    q = (1 - mix) * q / q.sum() + mix / n
    return q / q.sum()


def _row_loss(name: str, theta: jax.Array, a: jax.Array, y: jax.Array) -> jax.Array:
    z = jnp.sum(a * theta, axis=-1)
    if name == "logistic":
        return jax.nn.softplus(-y * z)
    return jnp.abs(z - y)


def _task(name, a, y, w, l2, n, describe) -> loop.Task:
    """Full-batch training of ``R`` stacked parameter vectors on weighted rows.

    ``a[rows, R, d]``, ``y[rows, R]``, ``w[rows, R]`` (loss weights ``1 / (m q)``,
    0 on padding); replica ``r`` minimises ``sum_j w_jr l_jr / n`` (plus
    ``l2 |theta_r|^2 / 2`` for logistic regression, as :func:`full_loss`).
    """
    rows, replicas, d = a.shape
    a32, y32, w32 = (np.asarray(v, np.float32) for v in (a, y, w))

    def batches(first, num_steps, rows_slice):
        del first, num_steps
        return {"a": a32[None, rows_slice], "y": y32[None, rows_slice], "w": w32[None, rows_slice]}

    def loss_fn(params, batch, key):
        del key
        local = batch["a"].shape[0]
        weighted = batch["w"] * _row_loss(name, params[None], batch["a"], batch["y"])
        # The loop averages devices' losses: the mean over local rows x rows / n sums them.
        data = jnp.sum(weighted) / local * (rows / n)
        penalty = 0.5 * l2 * jnp.sum(params**2) if name == "logistic" else 0.0
        return data + penalty, {}

    return loop.Task(
        init_params=lambda key: jnp.zeros((replicas, d), jnp.float32),
        loss_fn=loss_fn,
        batches=batches,
        batch_size=rows,
        describe=describe,
        fixed_batch=True,
    )


def _pad_rows(a: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, ...]:
    """Zero-weight rows appended up to a multiple of the device count."""
    extra = loop.pad_to_devices(a.shape[0]) - a.shape[0]
    pad = lambda v: np.concatenate([v, np.zeros((extra,) + v.shape[1:], v.dtype)])  # noqa: E731
    return pad(a), pad(y), pad(w)


def _train_config(config: Any) -> Any:
    train = ml_collections.ConfigDict(config.train.to_dict())  # unlocked copy
    train.seed = int(config.seed)
    if config.get("stop_after_steps", None) is not None:
        train.stop_after_steps = int(config.stop_after_steps)
    return train


def _check(config: Any) -> None:
    _blocks.check_choices("problem", config.problems, PROBLEMS)
    _blocks.check_choices("method", config.methods, METHODS)
    if not config.sizes or min(config.sizes) < 1 or max(config.sizes) > int(config.num_rows):
        raise ValueError(f"sizes must be in [1, num_rows], got {tuple(config.sizes)}")
    if int(config.num_seeds) < 1:
        raise ValueError(f"num_seeds must be >= 1, got {config.num_seeds}")
    if not 0.0 <= float(config.uniform_mix) <= 1.0:
        raise ValueError(f"uniform_mix must be in [0, 1], got {config.uniform_mix}")


def train_and_evaluate(config: Any, workdir: str) -> dict:
    """Trains every (problem, size) and the full data; returns the summary.

    Raises:
        ValueError: a bad config, or a workdir holding another configuration.
        FloatingPointError: a non-finite loss (the last good checkpoint stays).
    """
    _check(config)
    n, d, l2 = int(config.num_rows), int(config.num_cols), float(config.l2)
    seeds, methods = int(config.num_seeds), tuple(config.methods)
    train = _train_config(config)
    rows, complete = [], True
    for name in config.problems:
        problem = make_problem(name, n, d, int(config.data_seed))
        _, best = optimum(name, problem, l2)
        describe = {"problem": name, "n": n, "d": d, "l2": l2, "data_seed": int(config.data_seed),
                    "uniform_mix": float(config.uniform_mix)}
        # The optimiser on the full data: the gap it leaves by itself.
        full = loop.fit(
            train,
            os.path.join(workdir, name, "full"),
            _task(name, *_pad_rows(problem["a"][:, None], problem["y"][:, None], np.ones((n, 1))),
                  l2, n, {**describe, "arm": "full"}),
        )
        complete &= full.complete
        if full.complete:
            gap = (float(full_loss(name, problem, np.asarray(full.state.params)[0], l2)) - best) / best
            rows.append({"problem": name, "method": "full", "m": n, "gap_mean": gap,
                         "gap_se": 0.0, "gap_median": gap, "optimum": best})
        for m in config.sizes:
            m = int(m)
            padded = loop.pad_to_devices(m)
            a = np.zeros((padded, len(methods) * seeds, d))
            y = np.zeros((padded, len(methods) * seeds))
            w = np.zeros((padded, len(methods) * seeds))
            for i, method in enumerate(methods):
                q = probabilities(name, problem, method, float(config.uniform_mix))
                for s in range(seeds):
                    # The draw depends on (method, seed, m) only, not on the config's order.
                    key = jax.random.fold_in(
                        jax.random.key(int(config.seed)), (METHODS.index(method) * 1000 + s) * 100_000 + m
                    )
                    sample = leverage.sample_rows(key, jnp.asarray(q, jnp.float32), m, 1.0, replacement=True)
                    idx = np.asarray(sample.indices)[:m]
                    r = i * seeds + s
                    a[:m, r], y[:m, r] = problem["a"][idx], problem["y"][idx]
                    w[:m, r] = 1.0 / (m * q[idx])
            result = loop.fit(
                train,
                os.path.join(workdir, name, f"m{m}"),
                _task(name, a, y, w, l2, n, {**describe, "m": m, "methods": list(methods),
                                             "num_seeds": seeds, "seed": int(config.seed)}),
            )
            complete &= result.complete
            if not result.complete:
                continue
            params = np.asarray(result.state.params, np.float64)
            gaps = (full_loss(name, problem, params, l2) - best) / best
            for i, method in enumerate(methods):
                g = gaps[i * seeds : (i + 1) * seeds]
                rows.append({
                    "problem": name,
                    "method": method,
                    "m": m,
                    "gap_mean": float(g.mean()),
                    "gap_se": float(g.std(ddof=1) / math.sqrt(seeds)) if seeds > 1 else math.nan,
                    "gap_median": float(np.median(g)),
                    "optimum": best,
                })
    summary = {"experiment": "coreset_training", "complete": bool(complete),
               "results": metrics_lib.to_jsonable(rows)}
    writer = metrics_lib.MetricWriter(workdir)
    with writer:
        writer.write_config(config)
        writer.replace_metrics([{"step": 1, "results": summary["results"]}])
        if summary["complete"]:
            writer.write_summary(summary)
    return summary
