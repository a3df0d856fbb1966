r"""Adaptive tempered SMC on a separated 2-D Gaussian mixture with unequal weights.

The target is the posterior of the prior :math:`\mathcal N(0, s_0^2 I)` and
the likelihood

.. math::

    L(x) = \sum_{k=1}^4 w_k\, \mathcal N(x; \mu_k, s^2 I), \qquad
    w = (0.1, 0.2, 0.3, 0.4),\ \mu_k = (\pm 2, \pm 2),\ s = 0.4,

whose posterior :math:`\pi(x) \propto \mathcal N(x; 0, s_0^2 I) L(x)` is again
a mixture, known exactly (:func:`~jaxsampling.kernels.smc.mixtures.product`),
as is the evidence :math:`Z = \int \mathcal N(x; 0, s_0^2 I) L(x)\,dx`.
The modes are far apart compared to their width, so no MCMC move crosses
between them once the temperature is high: the mode weights come from the
tempering reweighting alone, which is what the experiment tests.

For each sampler variant of :func:`jaxsampling.kernels.smc.tempering.run`
(adaptive temperatures at conditional ESS ``target_ess``, resampling every
step):

* ``random_walk``: ``num_mcmc_steps`` preconditioned random-walk moves;
* ``mala``: ``num_mcmc_steps`` preconditioned MALA moves;
* ``waste_free``: random-walk chains of ``chain_length`` states from
  ``N / chain_length`` resampled ancestors, all states kept (Dau & Chopin 2022),

``num_seeds`` independent runs (one block per variant) give, with
:math:`e = \log\hat Z - \log Z`:

* ``logz_rmse``, ``logz_bias``, ``logz_std`` and ``z_ratio`` (mean of
  :math:`\hat Z / Z`, 1 for an unbiased estimate);
* ``mode_weight_tv``: the mean over runs of the total-variation distance
  :math:`\tfrac12 \sum_k |\hat w_k - w_k|` between the estimated posterior
  mode weights :math:`\hat w_k = \sum_i W_i r_k(x_i)` (``r_k`` the exact
  posterior responsibilities) and the exact ones; ``mode_weight_rmse``;
* ``mean_error``: RMS over runs of :math:`\|\hat m - m\|` (posterior mean);
* ``num_steps`` (tempering steps), ``acceptance`` (mean MCMC acceptance)
  and ``proposals_per_particle`` (MCMC proposals per particle, the cost).

The final particles of the first run of every variant go to
``particles.npz`` (see ``WORKSPACE.md``) with the posterior density on a
grid; ``python -m jaxsampling.plot`` draws them over its contours.

Run it from the repository root::

    python -m jaxsampling.main --config=configs/smc_mixture.py \
        --workdir=runs/smc_mixture

Example:
    >>> summary = train_and_evaluate(config, "/tmp/smc_mixture")  # doctest: +SKIP
    >>> summary["results"][0]["mode_weight_tv"]  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsampling.kernels import resampling as resampling_kernels
from jaxsampling.kernels.smc import mcmc, mixtures, tempering
from jaxsampling.train import _blocks
from jaxsampling.types import Array, PRNGKey

VARIANTS = ("random_walk", "mala", "waste_free")
KERNELS = {"random_walk": mcmc.random_walk, "mala": mcmc.mala}


class ExperimentState(NamedTuple):
    """Results so far; the checkpointed state (``B`` variants, ``S`` seeds).

    Attributes:
        next_block: index of the first variant not yet run.
        log_z: log-evidence estimates, NaN where not yet run.
        mode_weights: estimated posterior mode weights.
        means: estimated posterior means.
        num_steps: tempering steps of each run.
        acceptance: mean MCMC acceptance rate of each run.
        positions: final particles of the first run of each variant.
        log_weights: their normalised log-weights.
    """

    next_block: Array  # int32[]
    log_z: Array  # float32[B, S]
    mode_weights: Array  # float32[B, S, K]
    means: Array  # float32[B, S, d]
    num_steps: Array  # int32[B, S]
    acceptance: Array  # float32[B, S]
    positions: Array  # float32[B, N, d]
    log_weights: Array  # float32[B, N]


def init_state(
    num_blocks: int, num_seeds: int, num_modes: int, num_particles: int, dim: int
) -> ExperimentState:
    """Returns the state of a run with no finished block (numpy arrays)."""

    def nan(*shape):
        return np.full(shape, np.nan, np.float32)

    return ExperimentState(
        next_block=np.zeros((), np.int32),
        log_z=nan(num_blocks, num_seeds),
        mode_weights=nan(num_blocks, num_seeds, num_modes),
        means=nan(num_blocks, num_seeds, dim),
        num_steps=np.zeros((num_blocks, num_seeds), np.int32),
        acceptance=nan(num_blocks, num_seeds),
        positions=nan(num_blocks, num_particles, dim),
        log_weights=nan(num_blocks, num_particles),
    )


def make_variants(config: Any) -> list[str]:
    """The variants in run order.

    Raises:
        ValueError: an unknown variant or scheme, or ``chain_length`` not
            dividing ``num_particles``.
    """
    for v in config.variants:
        if v not in VARIANTS:
            raise ValueError(f"unknown variant {v!r}; known: {list(VARIANTS)}")
    if config.scheme not in resampling_kernels.SCHEMES:
        raise ValueError(
            f"unknown resampling scheme {config.scheme!r}; "
            f"known: {sorted(resampling_kernels.SCHEMES)}"
        )
    if "waste_free" in config.variants and (
        int(config.chain_length) < 2
        or int(config.num_particles) % int(config.chain_length)
    ):
        raise ValueError(
            f"chain_length ({config.chain_length}) must be >= 2 and divide "
            f"num_particles ({config.num_particles})"
        )
    return [str(v) for v in config.variants]


def make_problem(config: Any) -> tuple[mixtures.GaussianMixture, ...]:
    """``(prior, likelihood, posterior)`` as Gaussian mixtures (the posterior exact).

    The prior is the one-component mixture ``N(0, prior_sd^2 I)``; the
    posterior is ``mixtures.product(prior, likelihood)``, unnormalised with
    mass ``Z``. Leaves are float32 numpy arrays.
    """
    means = np.asarray(config.mode_means, np.float32)
    k, d = means.shape
    likelihood = mixtures.GaussianMixture(
        np.asarray(config.mode_weights, np.float32),
        means,
        np.full((k,), float(config.mode_sd), np.float32),
    )
    prior = mixtures.GaussianMixture(
        np.ones((1,), np.float32),
        np.zeros((1, d), np.float32),
        np.full((1,), float(config.prior_sd), np.float32),
    )
    posterior = jax.tree.map(np.asarray, _product(prior, likelihood))
    return prior, likelihood, posterior


_product = jax.jit(mixtures.product)


@functools.partial(
    jax.jit,
    static_argnames=(
        "variant",
        "num_particles",
        "num_mcmc_steps",
        "chain_length",
        "target_ess",
        "scheme",
        "max_steps",
        "batch_size",
    ),
)
def run_samplers(
    keys: PRNGKey,
    prior: mixtures.GaussianMixture,
    likelihood: mixtures.GaussianMixture,
    posterior: mixtures.GaussianMixture,
    *,
    variant: str,
    num_particles: int,
    num_mcmc_steps: int,
    chain_length: int,
    target_ess: float,
    scheme: str,
    max_steps: int,
    batch_size: int | None = None,
) -> tuple[Array, ...]:
    """Runs one tempered SMC sampler per key.

    Returns:
        ``(log_z [S], mode_weights [S, K], means [S, d], num_steps [S],
        acceptance [S], positions [S, N, d], log_weights [S, N])``.
    """
    target = mcmc.Target(
        log_prior=prior.log_density, log_likelihood=likelihood.log_density
    )
    prior_sd = prior.sds[0]

    def prior_sample(key, n):
        return prior_sd * jax.random.normal(key, (n, prior.dim), prior.means.dtype)

    waste_free = variant == "waste_free"
    kernel = KERNELS["random_walk" if waste_free else variant]

    def one(key):
        state, info = tempering.run(
            key,
            target,
            prior_sample,
            num_particles,
            kernel=kernel,
            num_mcmc_steps=num_mcmc_steps,
            target_ess=target_ess,
            ess_threshold=1.0,
            scheme=scheme,
            max_steps=max_steps,
            chain_length=chain_length if waste_free else None,
        )
        x = state.particles.position
        w = jnp.exp(state.log_weights)
        mode_weights = w @ posterior.responsibilities(x)
        steps = jnp.arange(info.acceptance.shape[0])
        ran = (steps >= 1) & (steps <= info.num_steps)
        acceptance = jnp.sum(jnp.where(ran, info.acceptance, 0.0)) / jnp.maximum(
            info.num_steps, 1
        )
        return (
            state.log_normalizer,
            mode_weights,
            w @ x,
            info.num_steps,
            acceptance,
            x,
            state.log_weights,
        )

    return _blocks.map_seeds(one, keys, batch_size)


def proposals_per_particle(variant: str, num_steps: float, config: Any) -> float:
    """MCMC proposals per particle over a run: the cost of a variant."""
    if variant == "waste_free":
        p = int(config.chain_length)
        return num_steps * (p - 1) / p
    return num_steps * int(config.num_mcmc_steps)


def block_metrics(
    variant: str,
    log_z: np.ndarray,
    mode_weights: np.ndarray,
    means: np.ndarray,
    num_steps: np.ndarray,
    acceptance: np.ndarray,
    exact: dict,
    config: Any,
) -> dict:
    """Error statistics of one variant, computed in float64 on the host."""
    err = np.asarray(log_z, np.float64) - exact["log_z"]
    w_err = np.asarray(mode_weights, np.float64) - np.asarray(exact["mode_weights"])
    m_err = np.asarray(means, np.float64) - np.asarray(exact["mean"])
    steps = float(np.mean(np.asarray(num_steps, np.float64)))
    return {
        "logz_rmse": float(np.sqrt(np.mean(err**2))),
        "logz_bias": float(np.mean(err)),
        "logz_std": float(np.std(err)),
        "z_ratio": float(np.mean(np.exp(err))),
        "mode_weight_tv": float(np.mean(0.5 * np.sum(np.abs(w_err), axis=-1))),
        "mode_weight_rmse": float(np.sqrt(np.mean(w_err**2))),
        "mean_error": float(np.sqrt(np.mean(np.sum(m_err**2, axis=-1)))),
        "num_steps": steps,
        "acceptance": float(np.mean(np.asarray(acceptance, np.float64))),
        "proposals_per_particle": proposals_per_particle(variant, steps, config),
    }


def exact_values(posterior: mixtures.GaussianMixture) -> dict:
    """``log Z``, the normalised mode weights and the mean of the posterior."""
    weights = np.asarray(posterior.weights, np.float64)
    mass = float(weights.sum())
    return {
        "log_z": math.log(mass),
        "mode_weights": (weights / mass).tolist(),
        "mean": ((weights / mass) @ np.asarray(posterior.means, np.float64)).tolist(),
    }


def density_grid(
    posterior: mixtures.GaussianMixture, half_width: float, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(xs, ys, density[i, j])``, the normalised posterior density on a grid."""
    axis = np.linspace(-half_width, half_width, size, dtype=np.float32)
    xx, yy = np.meshgrid(axis, axis, indexing="ij")
    points = np.stack([xx, yy], axis=-1).reshape(-1, 2)
    log_p = _blocks.mixture_log_density(posterior, points)
    mass = float(np.sum(np.asarray(posterior.weights, np.float64)))
    return axis, axis, np.exp(log_p - math.log(mass)).reshape(size, size)


def _meta(variants: list[str], config: Any) -> dict:
    return {
        "variants": variants,
        "num_seeds": int(config.num_seeds),
        "num_particles": int(config.num_particles),
        "num_mcmc_steps": int(config.num_mcmc_steps),
        "chain_length": int(config.chain_length),
        "target_ess": float(config.target_ess),
        "max_steps": int(config.max_steps),
        "scheme": str(config.scheme),
        "problem": [
            float(config.prior_sd),
            [float(w) for w in config.mode_weights],
            [[float(c) for c in m] for m in config.mode_means],
            float(config.mode_sd),
        ],
        "seed": int(config.seed),
    }


def train_and_evaluate(config: Any, workdir: str) -> dict:
    """Runs the tempered-SMC mixture experiment into ``workdir``; returns the summary.

    Writes ``config.json``, ``metrics.jsonl`` (one line per variant),
    checkpoints after each variant, ``particles.npz`` and ``summary.json``;
    a workdir holding a checkpoint is resumed.

    Args:
        config: a ConfigDict as in ``configs/smc_mixture.py``; the optional
            ``stop_after_blocks`` (tests) stops once that many variants are done.
        workdir: the run directory.

    Returns:
        The summary: the exact ``log_z``, ``mode_weights`` and ``mean``, and
        ``results``, one row per variant (see the module docstring), each
        with the seed-averaged ``estimated_mode_weights``.

    Raises:
        ValueError: bad variant, scheme or chain length; a checkpoint of
            another config.
        FloatingPointError: a non-finite log-evidence or mode-weight estimate.
    """
    variants = make_variants(config)
    num_seeds = int(config.num_seeds)
    num_particles = int(config.num_particles)
    prior, likelihood, posterior = make_problem(config)
    exact = exact_values(posterior)
    batch_size = int(config.get("seeds_per_batch", 0)) or None
    root_key = jax.random.key(config.seed)
    grid = density_grid(
        posterior, float(config.plot_half_width), int(config.plot_grid_size)
    )

    def run_block(b, state):
        variant = variants[b]
        keys = _blocks.block_keys(root_key, b, num_seeds)
        out = run_samplers(
            keys,
            prior,
            likelihood,
            posterior,
            variant=variant,
            num_particles=num_particles,
            num_mcmc_steps=int(config.num_mcmc_steps),
            chain_length=int(config.chain_length),
            target_ess=float(config.target_ess),
            scheme=str(config.scheme),
            max_steps=int(config.max_steps),
            batch_size=batch_size,
        )
        log_z, mode_w, means, steps, acc, x, log_w = (np.asarray(a) for a in out)
        _blocks.check_finite("log-evidence estimate", log_z, b, variant)
        _blocks.check_finite("mode-weight estimate", mode_w, b, variant)
        state = _blocks.set_block(
            state,
            b,
            log_z=log_z,
            mode_weights=mode_w,
            means=means,
            num_steps=steps,
            acceptance=acc,
            positions=x[0],
            log_weights=log_w[0],
        )
        row = {
            "variant": variant,
            **block_metrics(variant, log_z, mode_w, means, steps, acc, exact, config),
        }
        return state, row

    def summarize(state):
        done = int(state.next_block)
        rows = []
        for b, variant in enumerate(variants[:done]):
            rows.append(
                {
                    "variant": variant,
                    **block_metrics(
                        variant,
                        state.log_z[b],
                        state.mode_weights[b],
                        state.means[b],
                        state.num_steps[b],
                        state.acceptance[b],
                        exact,
                        config,
                    ),
                    "estimated_mode_weights": [
                        float(w) for w in np.mean(np.asarray(state.mode_weights[b]), 0)
                    ],
                }
            )
        return {
            "experiment": "smc_mixture",
            "complete": done == len(variants),
            "num_seeds": num_seeds,
            "num_particles": num_particles,
            **exact,
            "results": rows,
        }

    def write_artifacts(state):
        done = np.arange(len(variants)) < int(state.next_block)
        _blocks.write_particles(
            os.path.join(workdir, _blocks.PARTICLES_FILE),
            labels=variants,
            done=done,
            positions=state.positions,
            log_weights=state.log_weights,
            grid=grid[:2],
            density=np.broadcast_to(grid[2], (len(variants),) + grid[2].shape),
        )

    return _blocks.run_blocks(
        config,
        workdir,
        num_blocks=len(variants),
        meta=_meta(variants, config),
        state=init_state(
            len(variants),
            num_seeds,
            len(config.mode_weights),
            num_particles,
            len(config.mode_means[0]),
        ),
        run_block=run_block,
        summarize=summarize,
        write_artifacts=write_artifacts,
    )
