r"""Feynman-Kac correctors (FKC) on the toys of Skreta et al. (2025), weighted or not.

A variance-exploding diffusion sampler with a cheap drift targets a *new*
density only once its trajectories are weighted by the Feynman-Kac formula
(:mod:`jaxsampling.kernels.smc.correctors`). Two tasks, on ``R^2``:

* ``annealing``: :math:`p(x) \propto \sum_k w_k \mathcal N(x; \mu_k, 0.4^2 I)`
  with modes :math:`\mu_k = (\pm 1.5, \pm 1.5)` and unequal weights
  :math:`w \propto (1, 0.93, 0.87, 0.80)`, annealed to :math:`p^\beta`,
  :math:`\beta = 10`, with the drift :math:`\beta \nabla \log q_\sigma`
  (:func:`~jaxsampling.kernels.smc.correctors.annealing`). The target
  :math:`q_{\sigma_{\min}}^\beta` has mode weights close to
  :math:`w_k^\beta / \sum_j w_j^\beta` and is computed exactly by grid
  quadrature.
* ``product``: the product :math:`q_1 q_2` of two 2-mode experts, with the
  drift :math:`\nabla \log q_{1,\sigma} + \nabla \log q_{2,\sigma}`
  (:func:`~jaxsampling.kernels.smc.correctors.product_of_experts`); the
  product is an exact mixture (:func:`~jaxsampling.kernels.smc.mixtures.product`).
  The experts share one mode and disagree on their heavy one, so the product
  has a third mode in between.

Each task runs three variants from ``N(0, init_sd^2 I)`` down ``num_steps``
geometric noise levels from ``sigma_max`` to ``sigma_min``:

* ``fkc``: FK weights, resampling (``scheme``) at every step, as in the paper;
* ``fkc_killing``: FK weights, the killing (birth-death) scheme at every step;
* ``uncorrected``: the same SDE without weights (``corrected=False``), which
  is biased.

For each (task, variant) block, ``num_seeds`` independent runs give the
weighted estimates of the mode weights (particles assigned to the nearest
mode centre; the exact weights use the same rule), the mean, the second
moment and the within-mode spread :math:`E|x - c(x)|^2`, and the block
logs:

* ``mode_weight_tv`` (mean over runs of the total-variation distance
  :math:`\tfrac12 \sum_k |\hat w_k - w_k|`) and its standard error
  ``mode_weight_tv_se``; ``mode_weight_bias_tv``, the same distance for the
  run-averaged weights (what is left is bias plus noise/``sqrt(S)``);
* ``mean_error`` (RMS of :math:`\|\hat m - m\|`), ``second_moment_error``
  (RMS of the Frobenius error of :math:`E[x x^\top]`),
  ``spread_rel_error`` (mean of :math:`\hat v / v - 1`);
* ``ess_log_loss``: :math:`\sum_{t \ge 1} \log(N / \mathrm{ESS}_t)`, the
  per-step weight degeneracy summed over the steps (for log-normal weights,
  the sum of the per-step log-weight variances; a lineage accumulates more,
  since a particle's consecutive increments are positively correlated);
  ``min_ess`` (the smallest ESS / N of a step) and ``resampling_steps``.

The final particles of the first run of every block go to ``particles.npz``
with the task's exact density on a grid; ``python -m jaxsampling.plot``
draws them over its contours, and the errors with error bars.

Run it from the repository root::

    python -m jaxsampling.main --config=configs/fkc_annealing.py --workdir=runs/fkc

Reference: Skreta, Akhound-Sadegh, Ohanesian, Bondesan, Aspuru-Guzik, Doucet,
Brekelmans, Tong & Neklyudov (2025), Feynman-Kac Correctors in Diffusion:
Annealing, Guidance, and Product of Experts.

Example:
    >>> summary = train_and_evaluate(config, "/tmp/fkc")  # doctest: +SKIP
    >>> summary["results"][0]["mode_weight_tv"]  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsampling import metrics as metrics_lib
from jaxsampling.kernels import resampling as resampling_kernels
from jaxsampling.kernels.smc import correctors, engine, mixtures
from jaxsampling.train import _blocks
from jaxsampling.types import Array, PRNGKey

TASKS = ("annealing", "product")
VARIANTS = ("fkc", "fkc_killing", "uncorrected")


class Block(NamedTuple):
    """One cell of the experiment grid."""

    task: str
    variant: str


class Task(NamedTuple):
    """One target: its mixtures, its mode centres and its exact statistics."""

    mixtures: tuple  # (p,) for annealing, (first, second) for product
    centres: np.ndarray  # float32[K, 2]
    exact: dict  # mode_weights, mean, second_moment, spread
    density: tuple  # (xs, ys, density[G, G]) for plots


class ExperimentState(NamedTuple):
    """Results so far; the checkpointed state (``B`` blocks, ``S`` seeds).

    ``mode_weights`` has ``K`` = the largest number of modes over the tasks;
    a task with fewer modes leaves the rest at 0.

    Attributes:
        next_block: index of the first block not yet run.
        mode_weights: estimated mode weights.
        means: estimated means.
        second_moments: estimated ``E[x x^T]``.
        spreads: estimated within-mode spreads ``E|x - c(x)|^2``.
        ess_log_loss: sum over steps t >= 1 of log(N / ESS_t).
        min_ess: the smallest ESS / N over steps t >= 1.
        resampling_steps: resampling steps of each run.
        positions: final particles of the first run of each block.
        log_weights: their normalised log-weights.
    """

    next_block: Array  # int32[]
    mode_weights: Array  # float32[B, S, K]
    means: Array  # float32[B, S, d]
    second_moments: Array  # float32[B, S, d, d]
    spreads: Array  # float32[B, S]
    ess_log_loss: Array  # float32[B, S]
    min_ess: Array  # float32[B, S]
    resampling_steps: Array  # int32[B, S]
    positions: Array  # float32[B, N, d]
    log_weights: Array  # float32[B, N]


def init_state(
    num_blocks: int, num_seeds: int, num_modes: int, num_particles: int, dim: int = 2
) -> ExperimentState:
    """Returns the state of a run with no finished block (numpy arrays)."""

    def nan(*shape):
        return np.full(shape, np.nan, np.float32)

    return ExperimentState(
        next_block=np.zeros((), np.int32),
        mode_weights=nan(num_blocks, num_seeds, num_modes),
        means=nan(num_blocks, num_seeds, dim),
        second_moments=nan(num_blocks, num_seeds, dim, dim),
        spreads=nan(num_blocks, num_seeds),
        ess_log_loss=nan(num_blocks, num_seeds),
        min_ess=nan(num_blocks, num_seeds),
        resampling_steps=np.zeros((num_blocks, num_seeds), np.int32),
        positions=nan(num_blocks, num_particles, dim),
        log_weights=nan(num_blocks, num_particles),
    )


def make_blocks(config: Any) -> list[Block]:
    """The (task, variant) blocks in run order (task, then variant).

    Raises:
        ValueError: an unknown task, variant or resampling scheme.
    """
    for task in config.tasks:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; known: {list(TASKS)}")
    for variant in config.variants:
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; known: {list(VARIANTS)}")
    if config.scheme not in resampling_kernels.SCHEMES:
        raise ValueError(
            f"unknown resampling scheme {config.scheme!r}; "
            f"known: {sorted(resampling_kernels.SCHEMES)}"
        )
    return [Block(str(t), str(v)) for t in config.tasks for v in config.variants]


def _mixture(weights, means, sd) -> mixtures.GaussianMixture:
    """A normalised mixture with one shared sd, as float32 numpy arrays."""
    weights = np.asarray(weights, np.float64)
    return mixtures.GaussianMixture(
        (weights / weights.sum()).astype(np.float32),
        np.asarray(means, np.float32),
        np.full(weights.shape, float(sd), np.float32),
    )


def _noised(
    mixture: mixtures.GaussianMixture, sigma: float
) -> mixtures.GaussianMixture:
    """:meth:`GaussianMixture.noised` in numpy (no XLA compilation)."""
    sds = np.sqrt(np.asarray(mixture.sds, np.float64) ** 2 + sigma**2)
    return mixture._replace(sds=sds.astype(np.float32))


def _grid(half_width: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    axis = np.linspace(-half_width, half_width, size, dtype=np.float32)
    xx, yy = np.meshgrid(axis, axis, indexing="ij")
    return axis, np.stack([xx, yy], axis=-1).reshape(-1, 2)


def _nearest(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    d2 = np.sum((points[:, None, :] - centres[None]) ** 2, axis=-1)
    return np.argmin(d2, axis=-1)


def quadrature(
    log_density: Any, centres: np.ndarray, half_width: float, size: int
) -> dict:
    """Exact statistics of ``exp(log_density)`` by quadrature on a ``size^2`` grid.

    Args:
        log_density: ``x[M, 2] -> [M]``, an unnormalised log-density (numpy).
        centres: float[K, 2]; a point belongs to its nearest centre.
        half_width: the grid covers ``[-half_width, half_width]^2``.
        size: points per axis.

    Returns:
        ``mode_weights`` [K], ``mean`` [2], ``second_moment`` [2, 2] and
        ``spread`` (``E|x - c(x)|^2``), as Python lists and floats (float64).
        The mass outside the grid must be negligible.
    """
    _, points = _grid(half_width, size)
    log_p = np.asarray(log_density(points), np.float64)
    w = np.exp(log_p - log_p.max())
    w /= w.sum()
    x = points.astype(np.float64)
    assign = _nearest(points, np.asarray(centres))
    mode_weights = np.bincount(assign, weights=w, minlength=len(centres))
    offsets = x - np.asarray(centres, np.float64)[assign]
    return {
        "mode_weights": mode_weights.tolist(),
        "mean": (w @ x).tolist(),
        "second_moment": ((x * w[:, None]).T @ x).tolist(),
        "spread": float(w @ np.sum(offsets**2, axis=-1)),
    }


def density_on_grid(
    log_density: Any, half_width: float, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(xs, ys, density[i, j])`` of ``exp(log_density)`` normalised on the grid."""
    axis, points = _grid(half_width, size)
    log_p = np.asarray(log_density(points), np.float64)
    cell = float(axis[1] - axis[0]) ** 2
    p = np.exp(log_p - log_p.max())
    p /= p.sum() * cell
    return axis, axis, p.reshape(size, size)


_product = jax.jit(mixtures.product)


def make_task(name: str, config: Any) -> Task:
    """Builds a task's mixtures, mode centres, exact statistics and plot density."""
    sigma_min = float(config.sigma_min)
    half, size = float(config.grid_half_width), int(config.grid_size)
    if name == "annealing":
        p = _mixture(config.mode_weights, config.mode_means, config.mode_sd)
        beta = float(config.beta)
        noised = _noised(p, sigma_min)

        def log_density(x):
            return beta * _blocks.mixture_log_density(noised, x)

        centres = np.asarray(p.means, np.float32)
        exact = quadrature(log_density, centres, half, size)
        parts = (p,)
    elif name == "product":
        first = _mixture(config.first_weights, config.first_means, config.first_sd)
        second = _mixture(config.second_weights, config.second_means, config.second_sd)
        prod = jax.tree.map(
            np.asarray, _product(_noised(first, sigma_min), _noised(second, sigma_min))
        )
        share = np.asarray(prod.weights, np.float64)
        share = share / share.sum()
        heavy = share >= float(config.min_mode_weight)
        centres = np.asarray(prod.means, np.float32)[heavy]

        def log_density(x):
            return _blocks.mixture_log_density(prod, x)

        exact = quadrature(log_density, centres, half, size)
        # The moments exactly, from the product mixture (the quadrature agrees).
        means = np.asarray(prod.means, np.float64)
        var = np.asarray(prod.sds, np.float64) ** 2
        exact["mean"] = (share @ means).tolist()
        exact["second_moment"] = (
            np.einsum("k,ki,kj->ij", share, means, means)
            + np.sum(share * var) * np.eye(means.shape[1])
        ).tolist()
        exact["component_weights"] = share.tolist()
        parts = (first, second)
    else:
        raise ValueError(f"unknown task {name!r}; known: {list(TASKS)}")
    exact["centres"] = centres.tolist()
    density = density_on_grid(
        log_density, float(config.plot_half_width), int(config.plot_grid_size)
    )
    return Task(parts, centres, exact, density)


def make_model(
    task: str,
    parts: tuple,
    sigmas: Array,
    *,
    beta: float,
    init_sd: float,
    corrected: bool,
    noise: str = "tempered",
) -> engine.FeynmanKac:
    """The FKC (``corrected``) or plain reverse-SDE model of a task.

    ``noise`` selects the annealing SDE (see ``correctors.annealing``).
    """
    if task == "annealing":
        return correctors.annealing(
            parts[0], beta, sigmas, init_sd, corrected=corrected, noise=noise
        )
    return correctors.product_of_experts(
        parts[0], parts[1], sigmas, init_sd, corrected=corrected
    )


@functools.partial(
    jax.jit,
    static_argnames=(
        "task",
        "variant",
        "num_particles",
        "beta",
        "init_sd",
        "scheme",
        "batch_size",
        "noise",
    ),
)
def run_samplers(
    keys: PRNGKey,
    parts: tuple,
    centres: Array,
    sigmas: Array,
    *,
    task: str,
    variant: str,
    num_particles: int,
    beta: float,
    init_sd: float,
    scheme: str,
    batch_size: int | None = None,
    noise: str = "tempered",
) -> tuple[Array, ...]:
    """Runs one sampler per key; returns the per-run estimates.

    Returns:
        ``(mode_weights [S, K], means [S, d], second_moments [S, d, d],
        spreads [S], ess_log_loss [S], min_ess [S], resampling_steps [S],
        positions [S, N, d],
        log_weights [S, N])``.
    """
    corrected = variant != "uncorrected"
    model = make_model(
        task, parts, sigmas, beta=beta, init_sd=init_sd, corrected=corrected, noise=noise
    )
    num_steps = sigmas.shape[0] - 1
    run_scheme = "killing" if variant == "fkc_killing" else scheme
    threshold = 1.0 if corrected else 0.0

    def one(key):
        state, info, _ = engine.run(
            key,
            model,
            num_particles,
            num_steps,
            scheme=run_scheme,
            ess_threshold=threshold,
        )
        x = state.particles
        w = jnp.exp(state.log_weights)
        d2 = jnp.sum((x[:, None, :] - centres[None]) ** 2, axis=-1)
        assign = jnp.argmin(d2, axis=-1)
        mode_weights = jnp.zeros(centres.shape[0], w.dtype).at[assign].add(w)
        spread = w @ jnp.sum((x - centres[assign]) ** 2, axis=-1)
        ess = info.ess[1:] / num_particles
        return (
            mode_weights,
            w @ x,
            (x * w[:, None]).T @ x,
            spread,
            -jnp.sum(jnp.log(ess)),
            jnp.min(ess),
            jnp.sum(info.resampled.astype(jnp.int32)),
            x,
            state.log_weights,
        )

    return _blocks.map_seeds(one, keys, batch_size)


def block_metrics(
    mode_weights: np.ndarray,
    means: np.ndarray,
    second_moments: np.ndarray,
    spreads: np.ndarray,
    ess_log_loss: np.ndarray,
    min_ess: np.ndarray,
    resampling_steps: np.ndarray,
    exact: dict,
) -> dict:
    """Error statistics of one block, in float64 on the host."""
    k = len(exact["mode_weights"])
    w = np.asarray(mode_weights, np.float64)[:, :k]
    w_err = w - np.asarray(exact["mode_weights"])
    tv = 0.5 * np.sum(np.abs(w_err), axis=-1)
    s = tv.size
    m_err = np.asarray(means, np.float64) - np.asarray(exact["mean"])
    m2_err = np.asarray(second_moments, np.float64) - np.asarray(exact["second_moment"])
    spread = np.asarray(spreads, np.float64) / exact["spread"] - 1.0
    return {
        "mode_weight_tv": float(np.mean(tv)),
        "mode_weight_tv_se": (
            float(np.std(tv, ddof=1) / np.sqrt(s)) if s > 1 else float("nan")
        ),
        "mode_weight_bias_tv": float(0.5 * np.sum(np.abs(np.mean(w_err, axis=0)))),
        "mean_error": float(np.sqrt(np.mean(np.sum(m_err**2, axis=-1)))),
        "second_moment_error": float(
            np.sqrt(np.mean(np.sum(m2_err**2, axis=(-2, -1))))
        ),
        "spread_rel_error": float(np.mean(spread)),
        "ess_log_loss": float(np.mean(np.asarray(ess_log_loss, np.float64))),
        "min_ess": float(np.mean(np.asarray(min_ess, np.float64))),
        "resampling_steps": float(np.mean(np.asarray(resampling_steps, np.float64))),
    }


def _meta(blocks: list[Block], config: Any) -> dict:
    fields = (
        "num_seeds",
        "num_particles",
        "num_steps",
        "sigma_max",
        "sigma_min",
        "init_sd",
        "scheme",
        "mode_weights",
        "mode_means",
        "mode_sd",
        "beta",
        "annealing_noise",
        "first_weights",
        "first_means",
        "first_sd",
        "second_weights",
        "second_means",
        "second_sd",
        "min_mode_weight",
        "seed",
    )
    meta = {"blocks": [list(b) for b in blocks]}
    for name in fields:
        meta[name] = metrics_lib.to_jsonable(config[name])
    return meta


def train_and_evaluate(config: Any, workdir: str) -> dict:
    """Runs the FKC experiment into ``workdir`` and returns the summary.

    Writes ``config.json``, ``metrics.jsonl`` (one line per (task, variant)
    block), checkpoints after each block, ``particles.npz`` and
    ``summary.json``; a workdir holding a checkpoint is resumed.

    Args:
        config: a ConfigDict as in ``configs/fkc_annealing.py``; the optional
            ``stop_after_blocks`` (tests) stops once that many blocks are done.
        workdir: the run directory.

    Returns:
        The summary: ``exact`` statistics per task and ``results``, one row
        per block (see the module docstring) with the run-averaged
        ``estimated_mode_weights``.

    Raises:
        ValueError: an unknown task, variant or scheme; a checkpoint of
            another config.
        FloatingPointError: a non-finite estimate.
    """
    blocks = make_blocks(config)
    num_seeds = int(config.num_seeds)
    num_particles = int(config.num_particles)
    tasks = {name: make_task(name, config) for name in dict.fromkeys(config.tasks)}
    num_modes = max(len(t.centres) for t in tasks.values())
    sigmas = correctors.geometric_sigmas(
        float(config.sigma_max), float(config.sigma_min), int(config.num_steps)
    )
    batch_size = int(config.get("seeds_per_batch", 0)) or None
    root_key = jax.random.key(config.seed)

    def run_block(b, state):
        block = blocks[b]
        task = tasks[block.task]
        keys = _blocks.block_keys(root_key, b, num_seeds)
        out = run_samplers(
            keys,
            task.mixtures,
            task.centres,
            sigmas,
            task=block.task,
            variant=block.variant,
            num_particles=num_particles,
            beta=float(config.beta),
            init_sd=float(config.init_sd),
            scheme=str(config.scheme),
            batch_size=batch_size,
            noise=str(config.annealing_noise),
        )
        mode_w, means, m2, spreads, loss, min_ess, counts, x, log_w = (
            np.asarray(a) for a in out
        )
        for name, values in (("mode weights", mode_w), ("mean", means), ("moment", m2)):
            _blocks.check_finite(name, values, b, block)
        padded = np.zeros((num_seeds, num_modes), np.float32)
        padded[:, : mode_w.shape[1]] = mode_w
        state = _blocks.set_block(
            state,
            b,
            mode_weights=padded,
            means=means,
            second_moments=m2,
            spreads=spreads,
            ess_log_loss=loss,
            min_ess=min_ess,
            resampling_steps=counts,
            positions=x[0],
            log_weights=log_w[0],
        )
        row = {
            **block._asdict(),
            **block_metrics(
                padded, means, m2, spreads, loss, min_ess, counts, task.exact
            ),
        }
        return state, row

    def summarize(state):
        done = int(state.next_block)
        rows = []
        for b, block in enumerate(blocks[:done]):
            exact = tasks[block.task].exact
            k = len(exact["mode_weights"])
            rows.append(
                {
                    **block._asdict(),
                    **block_metrics(
                        state.mode_weights[b],
                        state.means[b],
                        state.second_moments[b],
                        state.spreads[b],
                        state.ess_log_loss[b],
                        state.min_ess[b],
                        state.resampling_steps[b],
                        exact,
                    ),
                    "estimated_mode_weights": [
                        float(v)
                        for v in np.mean(np.asarray(state.mode_weights[b]), axis=0)[:k]
                    ],
                }
            )
        return {
            "experiment": "fkc_annealing",
            "complete": done == len(blocks),
            "num_seeds": num_seeds,
            "num_particles": num_particles,
            "num_steps": int(config.num_steps),
            "exact": {name: task.exact for name, task in tasks.items()},
            "results": rows,
        }

    def write_artifacts(state):
        done = np.arange(len(blocks)) < int(state.next_block)
        first = next(iter(tasks.values())).density
        _blocks.write_particles(
            os.path.join(workdir, _blocks.PARTICLES_FILE),
            labels=[f"{b.task}: {b.variant}" for b in blocks],
            done=done,
            positions=state.positions,
            log_weights=state.log_weights,
            grid=first[:2],
            density=np.stack([tasks[b.task].density[2] for b in blocks]),
        )

    return _blocks.run_blocks(
        config,
        workdir,
        num_blocks=len(blocks),
        meta=_meta(blocks, config),
        state=init_state(len(blocks), num_seeds, num_modes, num_particles),
        run_block=run_block,
        summarize=summarize,
        write_artifacts=write_artifacts,
    )
