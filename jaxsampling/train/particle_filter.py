r"""Bootstrap and guided particle filters against the Kalman filter.

On the 1-D linear-Gaussian model of :mod:`jaxsampling.train.kalman`, whose
log-likelihood :math:`\log p(y_{1:T})` and filtering means
:math:`E[x_t \mid y_{1:t}]` the Kalman filter gives exactly, the experiment
runs two particle filters of :mod:`jaxsampling.kernels.smc.filters`:

* ``bootstrap``: moves with the transition :math:`f`, weights by
  :math:`g(y_t \mid x_t)` (Gordon, Salmond & Smith 1993);
* ``guided``: moves with the locally optimal proposal
  :math:`q_t \propto f_t g_t` (:func:`kalman.optimal_proposal`), weights by
  :math:`f g / q`, which no longer depends on :math:`x_t` (Doucet, Godsill &
  Andrieu 2000),

for every number of particles :math:`N` in ``config.num_particles``,
resampling adaptively (``ESS < ess_threshold * N``). For each (filter, N)
block, ``num_seeds`` independent filters run (vmapped over keys) and the
block logs, with :math:`e = \log\hat p(y_{1:T}) - \log p(y_{1:T})`:

* ``rmse``, ``bias``, ``std`` of :math:`e` (``std`` with ``ddof=0``, so
  ``rmse**2 = bias**2 + std**2``); the RMSE decays like :math:`N^{-1/2}`;
* ``mean_ratio`` = mean of :math:`\exp(e) = \hat p / p` and its standard
  error ``ratio_se``: the estimate is unbiased on the natural scale,
  :math:`E[\hat p] = p`, while :math:`E[e] \approx -\mathrm{Var}(e)/2 < 0`;
* ``filter_mean_rmse``: the RMSE of the particle filtering means against
  the Kalman means, over all steps and filters;
* ``mean_resampling_steps``: resampling steps per filter.

Blocks are checkpointed one by one; a restarted run resumes after the last
finished block and produces the same summary as a run straight through.

Run it from the repository root::

    python -m jaxsampling.main --config=configs/particle_filter.py \
        --workdir=runs/particle_filter

Example:
    >>> # config: the ConfigDict of configs/particle_filter.py (loaded by path)
    >>> summary = train_and_evaluate(config, "/tmp/pf")  # doctest: +SKIP
    >>> summary["results"][0]["rmse"]  # doctest: +SKIP
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from jax import lax

from jaxsampling.kernels import resampling as resampling_kernels
from jaxsampling.kernels.smc import filters
from jaxsampling.train import _blocks, kalman
from jaxsampling.types import Array, PRNGKey

FILTERS = ("bootstrap", "guided")


class Block(NamedTuple):
    """One cell of the experiment grid."""

    filter: str
    num_particles: int


class ExperimentState(NamedTuple):
    """Results so far; the checkpointed state.

    Attributes:
        next_block: index of the first block not yet run.
        loglik_hat: log-likelihood estimates, NaN where not yet run.
        mean_sq_err: per filter, the mean over steps of the squared error of
            the filtering mean against the Kalman mean.
        num_resampled: number of resampling steps of each filter.
    """

    next_block: Array  # int32[]
    loglik_hat: Array  # float32[num_blocks, num_seeds]
    mean_sq_err: Array  # float32[num_blocks, num_seeds]
    num_resampled: Array  # int32[num_blocks, num_seeds]


def init_state(num_blocks: int, num_seeds: int) -> ExperimentState:
    """Returns the state of a run with no finished block (numpy arrays)."""
    nan = np.full((num_blocks, num_seeds), np.nan, np.float32)
    return ExperimentState(
        next_block=np.zeros((), np.int32),
        loglik_hat=nan,
        mean_sq_err=nan.copy(),
        num_resampled=np.zeros((num_blocks, num_seeds), np.int32),
    )


def make_blocks(config: Any) -> list[Block]:
    """Lists the (filter, N) blocks in run order (filter, then N).

    Raises:
        ValueError: on an unknown filter or resampling scheme.
    """
    for name in config.filters:
        if name not in FILTERS:
            raise ValueError(f"unknown filter {name!r}; known: {list(FILTERS)}")
    if config.scheme not in resampling_kernels.SCHEMES:
        raise ValueError(
            f"unknown resampling scheme {config.scheme!r}; "
            f"known: {sorted(resampling_kernels.SCHEMES)}"
        )
    return [Block(str(f), int(n)) for f in config.filters for n in config.num_particles]


def make_model(params: kalman.LGSSM, ys: Array, kind: str):
    """The Feynman-Kac model of a ``bootstrap`` or ``guided`` (optimal) filter."""
    ssm = kalman.state_space_model(params, ys)
    if kind == "bootstrap":
        return filters.bootstrap(ssm)
    if kind == "guided":
        return filters.guided(ssm, kalman.optimal_proposal(params, ys))
    raise ValueError(f"unknown filter {kind!r}; known: {list(FILTERS)}")


@functools.partial(
    jax.jit,
    static_argnames=(
        "params",
        "kind",
        "num_particles",
        "scheme",
        "ess_threshold",
        "batch_size",
    ),
)
def run_filters(
    keys: PRNGKey,
    ys: Array,
    kalman_means: Array,
    *,
    params: kalman.LGSSM,
    kind: str,
    num_particles: int,
    scheme: str = "systematic",
    ess_threshold: float = 0.5,
    batch_size: int | None = None,
) -> tuple[Array, Array, Array]:
    """Runs independent filters, one per key (vmapped, or ``lax.map`` in batches).

    Args:
        keys: ``key[S]``, one per filter.
        ys: ``float32[T]`` observations.
        kalman_means: ``float32[T]`` exact filtering means.
        params: the model (static: a NamedTuple of Python floats).
        kind: ``"bootstrap"`` or ``"guided"``.
        num_particles: N.
        scheme: resampling scheme.
        ess_threshold: resample when ``ESS < ess_threshold * N``.
        batch_size: filters vmapped together (None: all at once).

    Returns:
        ``(loglik_hat float32[S], mean_sq_err float32[S], num_resampled int32[S])``.

    Example:
        >>> params = kalman.LGSSM(0.9, 1.0, 1.0)
        >>> _, ys = kalman.simulate(jax.random.key(0), params, 20)
        >>> _, means = kalman.kalman_filter(params, ys)
        >>> keys = jax.random.split(jax.random.key(1), 4)
        >>> ll, mse, n = run_filters(keys, ys, means, params=params,
        ...                          kind="guided", num_particles=100)
        >>> ll.shape
        (4,)
    """
    model = make_model(params, ys, kind)

    def one(key):
        state, info, means = filters.filter(
            key,
            model,
            num_particles,
            ys.shape[0],
            scheme=scheme,
            ess_threshold=ess_threshold,
        )
        mse = jnp.mean((means - kalman_means) ** 2)
        return state.log_normalizer, mse, jnp.sum(info.resampled.astype(jnp.int32))

    if batch_size is None or batch_size >= keys.shape[0]:
        return jax.vmap(one)(keys)
    return lax.map(one, keys, batch_size=batch_size)


def block_metrics(
    loglik_hat: np.ndarray,
    mean_sq_err: np.ndarray,
    num_resampled: np.ndarray,
    exact: float,
) -> dict:
    """Error statistics of one block, computed in float64 on the host."""
    err = np.asarray(loglik_hat, np.float64) - float(exact)
    ratio = np.exp(err)
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "bias": float(np.mean(err)),
        "std": float(np.std(err)),
        "mean_ratio": float(np.mean(ratio)),
        "ratio_se": float(np.std(ratio, ddof=1) / np.sqrt(err.size))
        if err.size > 1
        else float("nan"),
        "filter_mean_rmse": float(
            np.sqrt(np.mean(np.asarray(mean_sq_err, np.float64)))
        ),
        "mean_resampling_steps": float(np.mean(np.asarray(num_resampled, np.float64))),
    }


def _meta(blocks: list[Block], config: Any) -> dict:
    return {
        "blocks": [list(b) for b in blocks],
        "num_seeds": int(config.num_seeds),
        "T": int(config.T),
        "model": [float(config.rho), float(config.sigma_x), float(config.sigma_y)],
        "seeds": [int(config.seed), int(config.data_seed)],
        "scheme": str(config.scheme),
        "ess_threshold": float(config.ess_threshold),
    }


def train_and_evaluate(config: Any, workdir: str) -> dict:
    """Runs the particle-filter experiment into ``workdir``; returns the summary.

    Writes ``config.json``, ``metrics.jsonl`` (one line per (filter, N)
    block), checkpoints after each block and ``summary.json`` at the end; a
    workdir holding a checkpoint is resumed (see :mod:`jaxsampling.train._blocks`).

    Args:
        config: a ConfigDict as in ``configs/particle_filter.py``; the optional
            ``stop_after_blocks`` (tests) stops once that many blocks are done.
        workdir: the run directory.

    Returns:
        The summary: ``loglik_exact`` and ``results``, one row per block with
        ``filter, num_particles, rmse, bias, std, mean_ratio, ratio_se,
        filter_mean_rmse, mean_resampling_steps``.

    Raises:
        ValueError: unknown filter or scheme; a checkpoint of another config.
        FloatingPointError: a non-finite log-likelihood estimate.
    """
    blocks = make_blocks(config)
    num_seeds = int(config.num_seeds)
    params = kalman.LGSSM(
        float(config.rho), float(config.sigma_x), float(config.sigma_y)
    )
    _, ys = kalman.simulate(jax.random.key(config.data_seed), params, int(config.T))
    exact, kalman_means = kalman.kalman_filter(params, ys)
    exact = float(exact)
    logging.info("exact log-likelihood (Kalman): %.6f", exact)
    batch_size = int(config.get("seeds_per_batch", 0)) or None
    root_key = jax.random.key(config.seed)

    def run_block(b, state):
        block = blocks[b]
        keys = _blocks.block_keys(root_key, b, num_seeds)
        ll, mse, counts = run_filters(
            keys,
            ys,
            kalman_means,
            params=params,
            kind=block.filter,
            num_particles=block.num_particles,
            scheme=str(config.scheme),
            ess_threshold=float(config.ess_threshold),
            batch_size=batch_size,
        )
        ll, mse, counts = np.asarray(ll), np.asarray(mse), np.asarray(counts)
        _blocks.check_finite("log-likelihood estimate", ll, b, block)
        _blocks.check_finite("filtering mean", mse, b, block)
        state = _blocks.set_block(
            state, b, loglik_hat=ll, mean_sq_err=mse, num_resampled=counts
        )
        row = {**block._asdict(), **block_metrics(ll, mse, counts, exact)}
        return state, row

    def summarize(state):
        done = int(state.next_block)
        rows = [
            {
                **block._asdict(),
                **block_metrics(
                    state.loglik_hat[b],
                    state.mean_sq_err[b],
                    state.num_resampled[b],
                    exact,
                ),
            }
            for b, block in enumerate(blocks[:done])
        ]
        return {
            "experiment": "particle_filter",
            "complete": done == len(blocks),
            "loglik_exact": exact,
            "T": int(config.T),
            "num_seeds": num_seeds,
            "scheme": str(config.scheme),
            "ess_threshold": float(config.ess_threshold),
            "model": {
                "rho": float(config.rho),
                "sigma_x": float(config.sigma_x),
                "sigma_y": float(config.sigma_y),
            },
            "results": rows,
        }

    return _blocks.run_blocks(
        config,
        workdir,
        num_blocks=len(blocks),
        meta=_meta(blocks, config),
        state=init_state(len(blocks), num_seeds),
        run_block=run_block,
        summarize=summarize,
    )
