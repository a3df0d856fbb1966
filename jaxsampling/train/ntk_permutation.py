r"""Exact recovery of a permutation by NTK ensembles: finite ensembles against the closed form.

Reproduces and extends Giapitzakis, Back de Luca & Fountoulakis (2025): a
two-layer bias-free ReLU network (NTK parameterisation, both layers trained)
learns a permutation ``pi`` of ``k`` bits from the ``k`` basis vectors only;
the average of ``M`` independently trained networks, rounded, should
reproduce ``pi`` on all ``2^k - 1`` nonzero binary inputs.

One block per ``k``: a pool of ``pool_size`` networks of width ``width``,
trained by full-batch gradient descent (learning rate ``k``, ``steps_per_bit
* k`` steps: past float32 round-off) in one sharded ``lax.scan``
(:func:`jaxsampling.kernels.ntk.train`), then streamed over every input
(:func:`~jaxsampling.kernels.ntk.evaluate`). For each ensemble size ``M`` the
pool is split into ``pool_size // M`` disjoint groups; per rounding rule
(``sign``: the paper's; ``threshold``; ``top_h``) and ``M``:

* ``fraction``: the mean fraction of inputs a group recovers (``fraction_se``
  from the spread between groups) against the Gaussian-process prediction
  ``predicted_fraction`` (:func:`~jaxsampling.kernels.ntk.expected_fraction`);
* ``all_recovered``: the fraction of groups that recover every input, against
  ``predicted_all``, the Gaussian-process probability by ``gp_samples`` draws
  of the joint law of all inputs
  (:func:`~jaxsampling.kernels.ntk.critical_ensemble_sizes`, for ``k <=
  gp_max_k``), and ``predicted_all_independent``, the closed form with inputs
  treated as independent (:func:`~jaxsampling.kernels.ntk.all_inputs_probability`);
* ``predicted_m99`` (joint law) and ``predicted_m99_independent``: the
  smallest ``M`` that recovers all inputs with probability 0.99 (the issue's
  reference, by independence: about 1242 for the sign rule at ``k = 12``,
  under 32 for the threshold rule).

Each block also compares one network's output mean and variance per Hamming
weight and target bit with the Gaussian process (``max_mean_gap``,
``max_variance_gap``: finite width leaves a bias ``O(width^-1/2)``).

Run it from the repository root::

    python -m jaxsampling.main --config=configs/ntk_permutation.py --workdir=runs/ntk_permutation

Reference:
    Giapitzakis, Back de Luca & Fountoulakis (2025), Exact learning of
    permutations for nonzero binary inputs with logarithmic training size and
    quadratic ensemble complexity, arXiv:2502.16763.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxsampling import sharding
from jaxsampling.kernels import ntk
from jaxsampling.train import _blocks
from jaxsampling.types import Array

#: Probability of recovering every input that ``predicted_m99`` targets.
TARGET = 0.99


class ExperimentState(NamedTuple):
    """Results so far (``B`` blocks = values of ``k``, ``S`` ensemble sizes, ``R`` rules).

    Attributes:
        next_block: index of the first block not yet run.
        recovered: inputs each group recovers, ``-1`` past the last group of a size.
        moments: per ``h`` and target bit: mean, its SE, variance, its SE (NaN padded).
        final_loss: the largest training loss in the pool.
        critical: per rule, the critical ensemble size of each Gaussian-process
            draw (NaN for ``k > gp_max_k``).
    """

    next_block: Array  # int32[]
    recovered: Array  # int32[B, S, pool_size // min(sizes), R]
    moments: Array  # float32[B, max k, 2, 4]
    final_loss: Array  # float32[B]
    critical: Array  # float32[B, R, gp_samples]


def check_config(config: Any) -> tuple[list[int], list[int]]:
    """``(ks, ensemble sizes)``, or ``ValueError`` naming the bad field."""
    ks = [int(k) for k in config.ks]
    if not ks or len(set(ks)) != len(ks) or min(ks) < 2 or max(ks) > 24:
        raise ValueError(f"ks must be distinct ints in [2, 24], got {tuple(config.ks)}")
    sizes = [int(m) for m in config.ensemble_sizes]
    pool = int(config.pool_size)
    if not sizes or sorted(set(sizes)) != sizes or sizes[0] < 1:
        raise ValueError(f"ensemble_sizes must be increasing ints >= 1, got {tuple(config.ensemble_sizes)}")
    if sizes[-1] > pool:
        raise ValueError(f"the largest ensemble size {sizes[-1]} exceeds pool_size {pool}")
    if int(config.width) < 1:
        raise ValueError(f"width must be >= 1, got {config.width}")
    if int(config.steps_per_bit) < 1:
        raise ValueError(f"steps_per_bit must be >= 1, got {config.steps_per_bit}")
    if not 2 <= int(config.gp_max_k) <= 14:
        raise ValueError(f"gp_max_k must be in [2, 14] (an eigh of a 2^k-square matrix), got {config.gp_max_k}")
    if int(config.gp_samples) < 64 or int(config.gp_samples) % 64:
        raise ValueError(f"gp_samples must be a positive multiple of 64, got {config.gp_samples}")
    return ks, sizes


def permutation_for(k: int, seed: int) -> np.ndarray:
    """The fixed permutation of block ``k``: ``numpy.random.default_rng((seed, k))``."""
    return np.random.default_rng((seed, k)).permutation(k)


@functools.partial(jax.jit, static_argnames=("permutation", "width", "steps", "sizes"))
def pool_statistics(
    keys: Array, *, permutation: tuple[int, ...], width: int, steps: int, sizes: tuple[int, ...]
) -> tuple[Array, Array, tuple[Array, ...]]:
    """Trains one network per key and scores the pool: ``(final_loss, moments, recovered)``.

    ``moments``: ``[k, 2, 4]`` (:func:`~jaxsampling.kernels.ntk.class_moments`);
    ``recovered``: per size, ``int32[pool // M, rules]`` inputs recovered by each group.
    """
    k = len(permutation)
    trained = ntk.train(keys, np.array(permutation), width=width, steps=steps, learning_rate=float(k))
    stats = ntk.evaluate(trained.params, np.array(permutation), group_sizes=sizes)
    moments = jax.numpy.stack(ntk.class_moments(stats), axis=-1)
    recovered = tuple(r.sum(axis=-1) for r in stats.recovered)
    return trained.final_loss.max(), moments, recovered


@functools.lru_cache(maxsize=None)
def predicted_m99(k: int, rule: str) -> int | None:
    """The closed form's smallest ``M`` recovering every input with probability 0.99
    (inputs treated as independent)."""
    return ntk.min_ensemble_size(ntk.permutation_posterior(k), TARGET, rule)


def block_rows(ks: list[int], sizes: list[int], config: Any, state: ExperimentState, b: int) -> dict:
    """Block ``b``'s metrics row: per (rule, M) results and the moment gaps."""
    k = ks[b]
    post = ntk.permutation_posterior(k)
    n = 2**k - 1
    results = []
    critical = state.critical[b].astype(np.float64)
    joint = not np.isnan(critical).any()
    for r, rule in enumerate(ntk.RULES):
        m99 = float(np.quantile(critical[r], TARGET, method="inverted_cdf")) if joint else np.nan
        for s, m in enumerate(sizes):
            groups = int(config.pool_size) // m
            counts = state.recovered[b, s, :groups, r].astype(np.float64)
            fractions = counts / n
            results.append({
                "k": k,
                "rule": rule,
                "M": m,
                "groups": groups,
                "fraction": float(fractions.mean()),
                "fraction_se": float(fractions.std(ddof=1) / np.sqrt(groups)) if groups > 1 else None,
                "predicted_fraction": float(ntk.expected_fraction(post, m, rule)),
                "all_recovered": float(np.mean(counts == n)),
                "predicted_all": float(np.mean(critical[r] <= m)) if joint else None,
                "predicted_all_independent": float(ntk.all_inputs_probability(post, m, rule).independent),
                "predicted_m99": int(np.ceil(m99)) if np.isfinite(m99) else None,
                "predicted_m99_independent": predicted_m99(k, rule),
            })
    moments = state.moments[b, :k]
    gp = jax.tree.map(np.asarray, post)
    gp_mean = np.stack([gp.mean_one, gp.mean_zero], axis=1)
    present = np.isfinite(moments[..., 0])
    mean_gap = np.abs(moments[..., 0] - gp_mean)[present]
    var_gap = np.abs(moments[..., 2] - np.stack([gp.variance] * 2, axis=1))[present]
    return {
        "k": k,
        "num_inputs": n,
        "final_loss": float(state.final_loss[b]),
        "max_mean_gap": float(mean_gap.max()),
        "max_variance_gap": float(var_gap.max()),
        "moments": {
            "mean": moments[..., 0].tolist(), "mean_se": moments[..., 1].tolist(),
            "variance": moments[..., 2].tolist(), "gp_mean": gp_mean.tolist(),
            "gp_variance": gp.variance.tolist(),
        },
        "results": results,
    }


def _meta(ks: list[int], sizes: list[int], config: Any) -> dict:
    return {
        "ks": ks, "ensemble_sizes": sizes, "pool_size": int(config.pool_size),
        "width": int(config.width), "steps_per_bit": int(config.steps_per_bit),
        "gp_samples": int(config.gp_samples), "gp_max_k": int(config.gp_max_k),
        "seed": int(config.seed),
    }


def _nan_to_none(value):
    return None if isinstance(value, float) and not np.isfinite(value) else value


def train_and_evaluate(config: Any, workdir: str) -> dict:
    """Runs the NTK permutation experiment into ``workdir`` (resumable, one block per ``k``).

    Returns:
        The summary: ``results``, one row per (k, rule, M) (see the module
        docstring), and ``moments``, one row per ``k`` with the moment gaps.

    Raises:
        ValueError: a bad config; a checkpoint of another config.
        FloatingPointError: a non-finite loss or output moment.
    """
    ks, sizes = check_config(config)
    pool = int(config.pool_size)
    root_key = jax.random.key(config.seed)
    max_groups = pool // sizes[0]

    def run_block(b, state):
        k = ks[b]
        keys = _blocks.block_keys(root_key, b, pool)
        run = functools.partial(
            pool_statistics, permutation=tuple(permutation_for(k, config.seed).tolist()),
            width=int(config.width), steps=int(config.steps_per_bit) * k, sizes=tuple(sizes))
        if config.get("shard", True) and jax.device_count() > 1 and pool % jax.device_count() == 0:
            mesh = sharding.batch_mesh()
            with jax.set_mesh(mesh):
                out = run(sharding.shard_batch(keys, mesh))
        else:
            out = run(keys)
        loss, moments, recovered = jax.tree.map(np.asarray, out)
        _blocks.check_finite("training loss", loss[None], b, f"k={k}")
        present = np.isfinite(moments[..., 0]).sum()
        if present != 2 * k - 1 or not np.isfinite(moments[..., 2]).sum() == present:
            raise FloatingPointError(f"non-finite output moments in block {b} (k={k})")
        rec = np.full((len(sizes), max_groups, len(ntk.RULES)), -1, np.int32)
        for s, r in enumerate(recovered):
            rec[s, : r.shape[0]] = r
        padded = np.full((max(ks), 2, 4), np.nan, np.float32)
        padded[:k] = moments
        critical = np.full((len(ntk.RULES), int(config.gp_samples)), np.nan, np.float32)
        if k <= int(config.gp_max_k):
            critical = np.asarray(ntk.critical_ensemble_sizes(
                jax.random.fold_in(root_key, 10_000 + b), k, num_samples=int(config.gp_samples)))
        state = _blocks.set_block(
            state, b, recovered=rec, moments=padded, final_loss=loss, critical=critical)
        row = block_rows(ks, sizes, config, state, b)
        return state, jax.tree.map(_nan_to_none, row)

    def summarize(state):
        done = int(state.next_block)
        rows = [block_rows(ks, sizes, config, state, b) for b in range(done)]
        return jax.tree.map(_nan_to_none, {
            "experiment": "ntk_permutation",
            "complete": done == len(ks),
            "pool_size": pool,
            "width": int(config.width),
            "results": [r for row in rows for r in row["results"]],
            "moments": [{key: row[key] for key in ("k", "final_loss", "max_mean_gap", "max_variance_gap")}
                        for row in rows],
        })

    state = ExperimentState(
        next_block=np.zeros((), np.int32),
        recovered=np.full((len(ks), len(sizes), max_groups, len(ntk.RULES)), -1, np.int32),
        moments=np.full((len(ks), max(ks), 2, 4), np.nan, np.float32),
        final_loss=np.full((len(ks),), np.nan, np.float32),
        critical=np.full((len(ks), len(ntk.RULES), int(config.gp_samples)), np.nan, np.float32),
    )
    return _blocks.run_blocks(
        config, workdir, num_blocks=len(ks), meta=_meta(ks, sizes, config), state=state,
        run_block=run_block, summarize=summarize,
    )
