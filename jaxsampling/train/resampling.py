r"""Resampling schemes compared inside a bootstrap particle filter.

The experiment runs a bootstrap particle filter (Gordon, Salmond and Smith,
1993) on the 1-D linear-Gaussian model of :mod:`jaxsampling.train.kalman`,
whose log-likelihood :math:`\log p(y_{1:T})` the Kalman filter gives exactly,
and measures the error of the particle estimate

.. math::

    \log \hat p(y_{1:T}) = \sum_{t=1}^T \Big[\operatorname{logsumexp}_i
        \big(\ell^i_{t-1} + \log g(y_t \mid x^i_t)\big)
        - \operatorname{logsumexp}_i \ell^i_{t-1}\Big],

where :math:`\ell^i_{t-1}` are the log-weights after the previous (possibly
skipped) resampling step. Each step propagates the particles through the
prior, reweights them, accumulates the increment above, then resamples with
one of the schemes of :mod:`jaxsampling.kernels.resampling`, either at every
step (``"always"``) or when the effective sample size falls below
``ess_threshold * N`` (``"adaptive"``, Liu and Chen, 1995).

For every (scheme, N, mode) block, ``num_seeds`` independent filters run
(vmapped over keys, in batches of ``seeds_per_batch``) and the block logs the
RMSE, bias and standard deviation of ``loglik_hat - loglik_exact`` (``std``
with ``ddof=0``, so ``rmse**2 = bias**2 + std**2``) and the mean number of
resampling steps (the final step counts). Blocks are checkpointed one by one;
a restarted run resumes after the last finished block and produces the same
summary as a run straight through.

Run it from the repository root::

    python -m jaxsampling.main --config=configs/resampling.py --workdir=runs/resampling

Example:
    >>> # config: the ConfigDict of configs/resampling.py (loaded by path)
    >>> summary = train_and_evaluate(config, "/tmp/resampling")  # doctest: +SKIP
    >>> summary["results"][0]["rmse"]  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from jax import lax
from jax.scipy.special import logsumexp

from jaxsampling import checkpoint as checkpoint_lib
from jaxsampling import metrics as metrics_lib
from jaxsampling.kernels import resampling as resampling_kernels
from jaxsampling.train import kalman
from jaxsampling.types import Array, PRNGKey

MODES = ("always", "adaptive")


class Block(NamedTuple):
    """One cell of the experiment grid."""

    scheme: str
    num_particles: int
    mode: str


class ExperimentState(NamedTuple):
    """Results so far; the checkpointed state.

    Attributes:
        next_block: index of the first block not yet run.
        loglik_hat: particle log-likelihood estimates, NaN where not yet run.
        num_resampled: number of resampling steps of each filter.
    """

    next_block: Array  # int32[]
    loglik_hat: Array  # float32[num_blocks, num_seeds]
    num_resampled: Array  # int32[num_blocks, num_seeds]


def init_state(num_blocks: int, num_seeds: int) -> ExperimentState:
    """Returns the state of a run with no finished block."""
    return ExperimentState(
        next_block=jnp.zeros((), jnp.int32),
        loglik_hat=jnp.full((num_blocks, num_seeds), jnp.nan, jnp.float32),
        num_resampled=jnp.zeros((num_blocks, num_seeds), jnp.int32),
    )


def make_blocks(config: Any) -> list[Block]:
    """Lists the (scheme, N, mode) blocks in run order (scheme, then N, then mode).

    Raises:
        ValueError: on an unknown scheme or mode.
    """
    known = sorted(resampling_kernels.SCHEMES)
    for scheme in config.schemes:
        if scheme not in resampling_kernels.SCHEMES:
            raise ValueError(f"unknown resampling scheme {scheme!r}; known: {known}")
    modes = tuple(config.get("modes", MODES))
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; known: {list(MODES)}")
    return [
        Block(str(scheme), int(n), str(mode))
        for scheme in config.schemes
        for n in config.num_particles
        for mode in modes
    ]


def particle_filter(
    key: PRNGKey,
    params: kalman.LGSSM,
    ys: Array,
    num_particles: int,
    scheme: str,
    ess_threshold: float | Array,
) -> tuple[Array, Array]:
    """Runs one bootstrap particle filter and returns its log-likelihood estimate.

    Args:
        key: a PRNG key; step ``t`` uses ``fold_in(key, t)``.
        params: model parameters.
        ys: ``float32[T]`` observations.
        num_particles: ``N`` (a Python int).
        scheme: a name in ``resampling.SCHEMES``.
        ess_threshold: resample when ``ESS < ess_threshold * N``; ``inf``
            resamples at every step.

    Returns:
        ``(loglik_hat, num_resampled)``: a float32 scalar and an int32 scalar.

    Example:
        >>> params = kalman.LGSSM(0.9, 1.0, 1.0)
        >>> _, ys = kalman.simulate(jax.random.key(0), params, 20)
        >>> key = jax.random.key(1)
        >>> ll, n = particle_filter(key, params, ys, 100, "systematic", 0.5)
    """
    key_init, key_steps = jax.random.split(key)
    x = jnp.sqrt(params.stationary_var) * jax.random.normal(key_init, (num_particles,))
    log_w = jnp.zeros((num_particles,), x.dtype)
    var_y = jnp.asarray(params.sigma_y, x.dtype) ** 2

    def step(carry, inputs):
        x, log_w, loglik, count = carry
        t, y = inputs
        key_move, key_resample = jax.random.split(jax.random.fold_in(key_steps, t))
        x = params.rho * x + params.sigma_x * jax.random.normal(key_move, x.shape)
        new_log_w = log_w + kalman.normal_logpdf(y, x, var_y)
        loglik = loglik + logsumexp(new_log_w) - logsumexp(log_w)
        x, log_w, resampled = resampling_kernels.resample_if(
            key_resample, new_log_w, x, ess_threshold, scheme=scheme
        )
        return (x, log_w, loglik, count + resampled.astype(jnp.int32)), None

    init = (x, log_w, jnp.zeros((), x.dtype), jnp.zeros((), jnp.int32))
    steps = (jnp.arange(ys.shape[0], dtype=jnp.int32), ys)
    (_, _, loglik, count), _ = lax.scan(step, init, steps)
    return loglik, count


@functools.partial(jax.jit, static_argnames=("num_particles", "scheme", "batch_size"))
def run_filters(
    keys: PRNGKey,
    params: kalman.LGSSM,
    ys: Array,
    ess_threshold: float | Array,
    *,
    num_particles: int,
    scheme: str,
    batch_size: int | None = None,
) -> tuple[Array, Array]:
    """Runs independent particle filters, one per key (``lax.map`` in vmapped batches).

    ``ess_threshold`` is traced, so both modes of a scheme share one
    compilation (compilation dominates the quick start's wall time).

    Args:
        keys: ``key[S]`` one key per filter.
        params, ys, ess_threshold, num_particles, scheme: as in
            :func:`particle_filter`.
        batch_size: filters vmapped together (None: all of them at once).

    Returns:
        ``(loglik_hat float32[S], num_resampled int32[S])``.
    """
    one = functools.partial(
        particle_filter,
        params=params,
        ys=ys,
        num_particles=num_particles,
        scheme=scheme,
        ess_threshold=ess_threshold,
    )
    if batch_size is None or batch_size >= keys.shape[0]:
        return jax.vmap(one)(keys)
    return lax.map(one, keys, batch_size=batch_size)


def block_metrics(
    loglik_hat: np.ndarray, num_resampled: np.ndarray, exact: float
) -> dict:
    """Error statistics of one block, computed in float64 on the host."""
    err = np.asarray(loglik_hat, np.float64) - float(exact)
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "bias": float(np.mean(err)),
        "std": float(np.std(err)),
        "mean_resampling_steps": float(np.mean(np.asarray(num_resampled, np.float64))),
    }


def _block_meta(blocks: list[Block], config: Any) -> dict:
    return {
        "blocks": [list(b) for b in blocks],
        "num_seeds": int(config.num_seeds),
        "T": int(config.T),
        "model": [float(config.rho), float(config.sigma_x), float(config.sigma_y)],
        "seeds": [int(config.seed), int(config.data_seed)],
        "ess_threshold": float(config.ess_threshold),
    }


def _summary(config, blocks, state, exact) -> dict:
    done = int(state.next_block)
    rows = []
    for b, block in enumerate(blocks[:done]):
        rows.append(
            {
                **block._asdict(),
                **block_metrics(state.loglik_hat[b], state.num_resampled[b], exact),
            }
        )
    return {
        "experiment": "resampling",
        "complete": done == len(blocks),
        "loglik_exact": float(exact),
        "T": int(config.T),
        "num_seeds": int(config.num_seeds),
        "ess_threshold": float(config.ess_threshold),
        "model": {
            "rho": float(config.rho),
            "sigma_x": float(config.sigma_x),
            "sigma_y": float(config.sigma_y),
        },
        "results": rows,
    }


def train_and_evaluate(config: Any, workdir: str) -> dict:
    """Runs the resampling experiment into ``workdir`` and returns the summary.

    Writes ``config.json``, ``metrics.jsonl`` (one line per block, ``step``
    = number of blocks done), checkpoints under ``workdir/checkpoints`` after
    each block, and ``summary.json`` at the end. If ``workdir`` holds a
    checkpoint, the run resumes after its last finished block.

    Args:
        config: a ConfigDict as in ``configs/resampling.py``. The optional
            field ``stop_after_blocks`` (for tests) stops the run once that many
            blocks are done, as if it had been killed.
        workdir: the run directory.

    Returns:
        The summary dict: ``loglik_exact`` and ``results``, one row per block
        with ``scheme, num_particles, mode, rmse, bias, std,
        mean_resampling_steps``.

    Raises:
        ValueError: on an unknown scheme or mode, or a checkpoint in
            ``workdir`` from a different configuration.
        FloatingPointError: if a log-likelihood estimate is not finite (the
            last good checkpoint is kept).
    """
    blocks = make_blocks(config)
    num_seeds = int(config.num_seeds)
    params = kalman.LGSSM(
        float(config.rho), float(config.sigma_x), float(config.sigma_y)
    )
    _, ys = kalman.simulate(jax.random.key(config.data_seed), params, int(config.T))
    exact = float(kalman.kalman_log_likelihood(params, ys))
    logging.info("exact log-likelihood (Kalman): %.6f", exact)
    batch_size = int(config.get("seeds_per_batch", 0)) or None
    stop_after = config.get("stop_after_blocks", None)
    meta = _block_meta(blocks, config)
    root_key = jax.random.key(config.seed)

    writer = metrics_lib.MetricWriter(workdir)
    state = init_state(len(blocks), num_seeds)
    with writer, checkpoint_lib.Checkpointer(
        os.path.join(workdir, "checkpoints")
    ) as ckpt:
        latest = ckpt.latest_step()
        if latest is not None:
            saved_meta = ckpt.restore_meta(latest)
            if saved_meta != meta:
                raise ValueError(
                    f"{workdir} holds a checkpoint of a different configuration "
                    f"(saved {saved_meta}, now {meta}); use a fresh workdir"
                )
            state, _ = ckpt.restore(latest, jax.eval_shape(lambda: state))
            logging.info("resuming from checkpoint step %d", latest)
        # Only after the check: a mismatched rerun must not overwrite it.
        writer.write_config(config)
        start = int(state.next_block)
        writer.discard_from(start + 1)
        report = metrics_lib.ProgressReporter(
            len(blocks),
            every_steps=int(config.get("log_every_blocks", 1)),
            every_secs=float(config.get("log_every_secs", 10.0)),
            initial_step=start,
        )
        for b in range(start, len(blocks)):
            if stop_after is not None and b >= int(stop_after):
                logging.info("stop_after_blocks=%d reached; stopping", b)
                break
            block = blocks[b]
            threshold = (
                math.inf if block.mode == "always" else float(config.ess_threshold)
            )
            keys = jax.random.split(jax.random.fold_in(root_key, b), num_seeds)
            loglik_hat, counts = run_filters(
                keys,
                params,
                ys,
                jnp.float32(threshold),
                num_particles=block.num_particles,
                scheme=block.scheme,
                batch_size=batch_size,
            )
            loglik_hat, counts = np.asarray(loglik_hat), np.asarray(counts)
            bad = ~np.isfinite(loglik_hat)
            if bad.any():
                raise FloatingPointError(
                    f"non-finite log-likelihood estimate in block {b} {block}: "
                    f"{int(bad.sum())} of {num_seeds} filters; the last good "
                    f"checkpoint (step {ckpt.latest_step()}) is kept"
                )
            state = ExperimentState(
                next_block=jnp.asarray(b + 1, jnp.int32),
                loglik_hat=state.loglik_hat.at[b].set(loglik_hat),
                num_resampled=state.num_resampled.at[b].set(counts),
            )
            writer.write_scalars(
                b + 1, {**block._asdict(), **block_metrics(loglik_hat, counts, exact)}
            )
            ckpt.save(b + 1, state, meta=meta)
            report(b + 1)

        summary = _summary(config, blocks, state, exact)
        if summary["complete"]:
            writer.write_summary(summary)
    return summary
