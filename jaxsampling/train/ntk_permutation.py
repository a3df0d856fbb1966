r"""Exact recovery of a permutation by NTK ensembles: finite ensembles against the closed form.

Reproduces and extends Giapitzakis, Back de Luca & Fountoulakis (2025): a
two-layer bias-free ReLU network (NTK parameterisation, both layers trained)
learns a permutation ``pi`` of ``k`` bits from the ``k`` basis vectors only;
the average of ``M`` independently trained networks, rounded, should
reproduce ``pi`` on all ``2^k - 1`` nonzero binary inputs.

One block per ``k``: a pool of ``pool_size`` networks of width ``width``,
trained by full-batch gradient descent (learning rate ``k``, ``steps_per_bit
* k`` steps: past float32 round-off) with the shared loop
(:func:`jaxsampling.train.loop.fit`: the pool is an ensemble sharded over
every device of every process, checkpoints within the block in
``<workdir>/k<k>``), then streamed over every input
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
import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxsampling import sharding
from jaxsampling.kernels import ntk
from jaxsampling.train import _blocks, loop
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
    calls = int(config.calls_per_block)
    if calls < 1 or int(config.steps_per_bit) % calls:
        raise ValueError(
            f"calls_per_block must be >= 1 and divide steps_per_bit ({config.steps_per_bit}), "
            f"got {config.calls_per_block}"
        )
    if not 2 <= int(config.gp_max_k) <= 14:
        raise ValueError(f"gp_max_k must be in [2, 14] (an eigh of a 2^k-square matrix), got {config.gp_max_k}")
    if int(config.gp_samples) < 64 or int(config.gp_samples) % 64:
        raise ValueError(f"gp_samples must be a positive multiple of 64, got {config.gp_samples}")
    return ks, sizes


def permutation_for(k: int, seed: int) -> np.ndarray:
    """The fixed permutation of block ``k``: ``numpy.random.default_rng((seed, k))``."""
    return np.random.default_rng((seed, k)).permutation(k)


@functools.lru_cache(maxsize=None)
def _member_losses(k: int, width: int):
    """``(params[M], x, y) -> L[M]``, ``L = (1/2k) sum_i |f(x_i) - y_i|^2`` per network."""
    net = ntk.TwoLayer(width, k)

    def losses(params, x, y):
        residual = jax.vmap(net.apply, in_axes=(0, None))(params, x) - y
        return 0.5 * jnp.mean(jnp.sum(residual * residual, axis=-1), axis=-1)

    return losses


@functools.lru_cache(maxsize=None)
def _ensemble_task_fns(k: int, width: int, members: int):
    """The loop's ``init_params`` and ``loss_fn`` of a pool (cached: one compilation per shape).

    Network ``j`` of block ``k`` starts from ``TwoLayer.init(fold_in(fold_in(key, k), j))``
    (whatever the padding; independent across blocks); a device's loss is the sum
    of its networks' losses, so each gets its own gradient.
    """
    net = ntk.TwoLayer(width, k)
    member_losses = _member_losses(k, width)

    def init_params(key):
        x = jnp.zeros((1, k), jnp.float32)
        block_key = jax.random.fold_in(key, k)
        return jax.vmap(lambda j: net.init(jax.random.fold_in(block_key, j), x))(
            jnp.arange(members)
        )

    def loss_fn(params, batch, key):
        del key
        losses = member_losses(params, batch["x"], batch["y"])
        return jnp.sum(losses), {"mean_network_loss": jnp.mean(losses)}

    return init_params, loss_fn


def train_config(config: Any, k: int) -> Any:
    """The :func:`~jaxsampling.train.loop.fit` config of block ``k``: gradient descent
    (``optax.sgd``, learning rate ``k``) for ``steps_per_bit * k`` steps in
    ``calls_per_block`` compiled calls, a checkpoint and a metrics row after each."""
    steps = int(config.steps_per_bit) * k
    chunk = steps // int(config.calls_per_block)
    train = ml_collections.ConfigDict({
        "seed": int(config.seed),
        "num_steps": steps,
        "steps_per_call": chunk,
        "eval_every": chunk,
        "checkpoint_every": chunk,
        "keep_checkpoints": 2,
        "log_every_secs": float(config.get("log_every_secs", 10.0)),
        "optimizer": {"name": "sgd", "kwargs": {}, "clip_norm": None,
                      "schedule": {"kind": "constant", "peak_value": float(k), "warmup_steps": 0}},
    })
    if config.get("stop_after_steps", None) is not None:
        train.stop_after_steps = int(config.stop_after_steps)
    return train


def train_pool(config: Any, k: int, workdir: str) -> Any | None:
    """Trains the pool of block ``k`` with the shared loop in ``workdir``.

    The pool (padded to a multiple of the device count) is sharded over every
    device of every process (:attr:`~jaxsampling.train.loop.Task.shard_params`).

    Returns:
        The parameters ``[pool, ...]`` (sharded), or None if the fit stopped
        early (``stop_after_steps``).
    """
    pool, width = int(config.pool_size), int(config.width)
    members = loop.pad_to_devices(pool)
    init_params, loss_fn = _ensemble_task_fns(k, width, members)
    x, y = (np.asarray(v, np.float32)
            for v in ntk.training_set(permutation_for(k, config.seed)))
    task = loop.Task(
        init_params=init_params,
        loss_fn=loss_fn,
        batches=lambda first, num_steps, rows: {"x": x[None, rows], "y": y[None, rows]},
        batch_size=k,
        describe={"k": k, "pool": pool, "members": members, "width": width,
                  "permutation": permutation_for(k, config.seed).tolist()},
        fixed_batch=True,
        shard_params=True,
    )
    result = loop.fit(train_config(config, k), workdir, task)
    if not result.complete:
        return None
    return jax.tree.map(lambda p: p[:pool] if p.shape[0] > pool else p, result.state.params)


@functools.lru_cache(maxsize=16)
def _statistics(permutation: tuple[int, ...], sizes: tuple[int, ...], width: int, mesh: Any):
    k = len(permutation)
    member_losses = _member_losses(k, width)
    perm = np.array(permutation)

    def statistics(params):
        x, y = ntk.training_set(perm)
        final_loss = member_losses(params, x.astype(jnp.float32), y.astype(jnp.float32))
        stats = ntk.evaluate(params, perm, group_sizes=sizes)
        recovered = tuple(r.sum(axis=-1) for r in stats.recovered)
        return final_loss, stats._replace(recovered=recovered)

    # Per-network results, all-gathered (exact): no cross-device sum whose order
    # could depend on how the devices are spread over processes.
    return jax.jit(statistics, out_shardings=NamedSharding(mesh, P()))


def pool_statistics(params: Any, *, permutation: tuple[int, ...], sizes: tuple[int, ...]
                    ) -> tuple[Array, Array, tuple[Array, ...]]:
    """Scores a trained pool: ``(final_loss, moments, recovered)``, replicated.

    ``final_loss``: the largest training loss in the pool; ``moments``:
    ``[k, 2, 4]`` (:func:`~jaxsampling.kernels.ntk.class_moments`);
    ``recovered``: per size, ``int32[pool // M, rules]`` inputs recovered by
    each group. The pool may be sharded over every process's devices.
    """
    w1 = params["params"]["w1"]
    mesh = w1.sharding.mesh if isinstance(w1.sharding, NamedSharding) else (
        sharding.batch_mesh(axis_type=AxisType.Auto))
    fn = _statistics(tuple(permutation), tuple(sizes), int(w1.shape[-1]), mesh)
    final_loss, stats = jax.tree.map(np.asarray, fn(params))
    with jax.default_device(jax.local_devices(backend="cpu")[0]):
        moments = np.stack(jax.tree.map(np.asarray, ntk.class_moments(stats)), axis=-1)
    return final_loss.max(), moments, stats.recovered


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
        params = train_pool(config, k, os.path.join(workdir, f"k{k}"))
        if params is None:
            return None
        out = pool_statistics(params, permutation=tuple(permutation_for(k, config.seed).tolist()),
                              sizes=tuple(sizes))
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
