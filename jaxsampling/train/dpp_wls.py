r"""Weighted least squares from i.i.d. optimal, DPP and volume-rescaled designs.

Reproduces the comparison of Nouy & Michel (2023): approximate ``f`` on
``[-1, 1]`` (uniform measure ``mu``) by polynomials of degree ``< m`` from
``n`` evaluations, with the weighted least-squares estimator
:func:`jaxsampling.kernels.dpp.wls_fit` (weights ``w = m / k_m``, ``k_m``
the inverse Christoffel function of the orthonormal Legendre basis), on
four designs from :mod:`jaxsampling.kernels.dpp.wls`:

* ``iid``: ``n`` i.i.d. points from the optimal density ``rho = k_m / m``;
* ``dpp``: the projection DPP (``n = m``, interpolation);
* ``volume_rescaled``: the ``m`` DPP points plus ``n - m`` i.i.d. points
  from ``rho`` (generalised volume-rescaled sampling; unbiased);
* ``repeated_dpp``: ``r = n / m >= 2`` independent DPPs.

For each dimension ``m`` of ``dims`` (one block) and each ``n = r m``,
``r`` in ``sample_ratios``, ``num_seeds`` independent designs are drawn per
method and each test function of ``functions`` (``runge``:
``1 / (1 + 25 x^2)``, smooth; ``abs``: ``|x|``, a kink; ``step``: a jump)
is fitted. Reported, per (function, m, method, n):

* the squared-error ratio ``||f - f_hat||^2 / e_m(f)^2``, with
  ``e_m(f) = ||f - P_m f||`` the best-approximation error (``>= 1``; by
  Parseval ``1 + ||c_hat - c*||^2 / e_m(f)^2``, with ``c*`` and ``e_m(f)``
  from composite Gauss-Legendre quadrature in float64): its mean (with
  standard error), median and 10% / 90% quantiles. For the DPP the
  expectation is exactly ``m + 1``; the ratio is heavy tailed at ``n = m``,
  so the mean over seeds is noisy there;
* ``well_conditioned``: the fraction of designs with
  ``||G - I||_2 <= well_conditioned_delta`` (``G`` the weighted Gram
  matrix; ``E[G] = I`` for every design).

Designs of several sizes share draws (nested prefixes, each exactly of its
law): per seed, one i.i.d. stream gives the ``iid`` designs (its first
``n`` points); an independent DPP plus a second i.i.d. stream give the
``volume_rescaled`` designs (the DPP and the first ``n - m`` points; the
order of the points does not change the fit); ``r_max`` independent DPPs
give ``dpp`` (the first) and ``repeated_dpp`` (the first ``r``). All of a
block's draws and fits are one jitted program (compiled once per ``m``),
in float64 (``float64``: the interpolating designs are ill conditioned),
``seeds_per_batch`` seeds at a time.

Run it from the repository root::

    python -m jaxsampling.main --config=configs/dpp_wls.py --workdir=runs/dpp_wls

Example:
    >>> summary = train_and_evaluate(config, "/tmp/dpp_wls")  # doctest: +SKIP
    >>> summary["results"][0]["mean_ratio"]  # doctest: +SKIP

References:
    Nouy & Michel (2023), Weighted least-squares approximation with
    determinantal point processes and generalized volume sampling
    (arXiv:2312.14057). Cohen & Migliorati (2017), Optimal weighted
    least-squares methods.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsampling.kernels import dpp
from jaxsampling.train import _blocks
from jaxsampling.types import Array

METHODS = ("iid", "dpp", "volume_rescaled", "repeated_dpp")


class TestFunction(NamedTuple):
    """A target ``f`` on ``[-1, 1]``: jnp and numpy forms, and its kinks."""

    fn: Callable[[Any], Any]  # works on jnp and numpy arrays
    breakpoints: tuple[float, ...]  # kinks / jumps, for the quadrature


FUNCTIONS = {
    "runge": TestFunction(lambda x: 1.0 / (1.0 + 25.0 * x * x), ()),
    "abs": TestFunction(lambda x: abs(x), (0.0,)),
    "step": TestFunction(lambda x: (x > 0.3) * 1.0, (0.3,)),
}


class Cell(NamedTuple):
    """One (method, n) design of a block."""

    method: str
    ratio: int  # n = ratio * m


class ExperimentState(NamedTuple):
    """Results so far; the checkpointed state (``B`` blocks, ``F`` functions,
    ``K`` cells, ``S`` seeds), float64.

    Attributes:
        next_block: index of the first block (dimension ``m``) not yet run.
        error_ratio: ``||f - f_hat||^2 / e_m(f)^2`` per seed.
        gram_deviation: ``||G - I||_2`` per seed.
        best_error: ``e_m(f)^2``, the squared best-approximation error.
    """

    next_block: Array  # int32[]
    error_ratio: Array  # float64[B, F, K, S]
    gram_deviation: Array  # float64[B, K, S]
    best_error: Array  # float64[B, F]


def make_cells(config: Any) -> list[Cell]:
    """The (method, ratio) cells of every block, in report order.

    ``iid`` and ``volume_rescaled`` at every ratio, ``dpp`` at ratio 1 and
    ``repeated_dpp`` at the ratios ``>= 2``, for the methods of ``methods``.

    Raises:
        ValueError: an unknown method or function, ratios that are not
            increasing ints starting at 1, dims that are not increasing
            ints >= 1, or a bad seed count or delta.
    """
    methods = tuple(config.methods)
    for method in methods:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; known: {list(METHODS)}")
    if not methods or len(set(methods)) != len(methods):
        raise ValueError(f"methods must be distinct and non-empty, got {methods}")
    for name in config.functions:
        if name not in FUNCTIONS:
            raise ValueError(f"unknown function {name!r}; known: {list(FUNCTIONS)}")
    if not config.functions or len(set(config.functions)) != len(config.functions):
        raise ValueError(
            f"functions must be distinct and non-empty, got {config.functions}"
        )
    ratios = list(config.sample_ratios)
    if (
        not ratios
        or any(not isinstance(r, int) or isinstance(r, bool) for r in ratios)
        or sorted(set(ratios)) != ratios
        or ratios[0] != 1
    ):
        raise ValueError(
            f"sample_ratios must be increasing ints starting at 1, got {tuple(ratios)}"
        )
    dims = list(config.dims)
    if (
        not dims
        or any(not isinstance(m, int) or isinstance(m, bool) for m in dims)
        or sorted(set(dims)) != dims
        or dims[0] < 1
    ):
        raise ValueError(f"dims must be increasing ints >= 1, got {tuple(dims)}")
    if int(config.num_seeds) < 2:
        raise ValueError(f"num_seeds must be >= 2, got {config.num_seeds}")
    if not float(config.well_conditioned_delta) > 0:
        raise ValueError("well_conditioned_delta must be > 0")
    cells = []
    for method in METHODS:
        if method not in methods:
            continue
        for r in ratios:
            if (method == "dpp" and r != 1) or (method == "repeated_dpp" and r < 2):
                continue
            cells.append(Cell(method, r))
    if not cells:
        raise ValueError("no cell to run (repeated_dpp alone needs a ratio >= 2)")
    return cells


def init_state(num_blocks: int, num_functions: int, num_cells: int, num_seeds: int):
    """The state of a run with no finished block (numpy arrays)."""
    return ExperimentState(
        next_block=np.zeros((), np.int32),
        error_ratio=np.full((num_blocks, num_functions, num_cells, num_seeds), np.nan),
        gram_deviation=np.full((num_blocks, num_cells, num_seeds), np.nan),
        best_error=np.full((num_blocks, num_functions), np.nan),
    )


def references(functions: tuple[str, ...], m: int, num_nodes: int):
    """``(c*[F, m], e_m(f)^2[F])`` in float64 (composite Gauss-Legendre)."""
    coefs, errors = [], []
    for name in functions:
        f = FUNCTIONS[name]
        c, e2, _ = dpp.best_approximation(
            f.fn, m, num_nodes=num_nodes, breakpoints=f.breakpoints
        )
        coefs.append(c)
        errors.append(e2)
    return np.stack(coefs), np.asarray(errors)


@functools.partial(
    jax.jit, static_argnames=("m", "cells", "functions", "batch_size")
)
def evaluate(
    keys: Array,
    c_star: Array,
    best_error: Array,
    *,
    m: int,
    cells: tuple[Cell, ...],
    functions: tuple[str, ...],
    batch_size: int | None,
) -> tuple[Array, Array]:
    """Draws every cell's design for each key and fits every function.

    The samplers run on a batch of keys at once (their batched loops; a
    seed's draws do not depend on the batch), ``batch_size`` seeds at a time
    (``lax.map``; the last batch is padded with repeated keys, dropped).
    Every cell's design is padded to the largest ``n`` and masked, so one
    :func:`~jaxsampling.kernels.dpp.wls_fit` fits them all.

    Args:
        keys: ``(S,)`` typed keys, one per seed.
        c_star: ``(F, m)`` best-approximation coefficients.
        best_error: ``(F,)`` squared best-approximation errors.

    Returns:
        ``(error_ratio[F, K, S], gram_deviation[K, S])``.
    """
    def largest(methods, offset=0):
        return max([c.ratio - offset for c in cells if c.method in methods] or [0])

    repeats = largest(("dpp", "repeated_dpp"))  # DPP draws per seed
    vr_extra = largest(("volume_rescaled",), offset=1) * m  # its i.i.d. points
    iid_size = largest(("iid",)) * m
    has_vr = any(c.method == "volume_rescaled" for c in cells)

    def one_batch(batch_keys):
        # One i.i.d. call (the iid stream, then volume rescaling's n - m
        # points) and one DPP call (volume rescaling's DPP, then the
        # repeated ones): two sampling loops to compile.
        pairs = jax.vmap(lambda k: jax.random.split(k, 2))(batch_keys)
        k_iid, k_dpp = pairs[:, 0], pairs[:, 1]
        source = {}
        if iid_size + vr_extra:
            iid = dpp.legendre_iid(k_iid, m, iid_size + vr_extra).x
            source["iid"] = iid[:, :iid_size]
        draws = repeats + int(has_vr)
        rep = dpp.legendre_repeated_dpp(k_dpp, m, draws).x if draws else None
        if has_vr:
            source["volume_rescaled"] = jnp.concatenate(
                [rep[:, :m], iid[:, iid_size:]], axis=1
            )
        if repeats:
            source["dpp"] = source["repeated_dpp"] = rep[:, int(has_vr) * m :]
        # Every cell's design padded to the largest n and masked: one fit
        # (one solve program to compile) for the whole block.
        n_max = max(c.ratio for c in cells) * m
        xs, masks = [], []
        for c in cells:
            x = source[c.method][:, : c.ratio * m]
            xs.append(jnp.pad(x, ((0, 0), (0, n_max - x.shape[1]))))
            masks.append(jnp.arange(n_max) < c.ratio * m)
        x = jnp.stack(xs)  # (K, b, n_max)
        mask = jnp.broadcast_to(jnp.stack(masks)[:, None, :], x.shape)
        Phi = dpp.legendre_basis(x, m)
        y = jnp.stack([FUNCTIONS[name].fn(x) for name in functions], axis=-1)
        fit = dpp.wls_fit(Phi, y, dpp.optimal_weights(Phi), mask)  # coef (K, b, m, F)
        sq = jnp.sum((fit.coef - c_star.T) ** 2, axis=-2)  # (K, b, F)
        ratio = 1.0 + sq / best_error
        # (b, F, K) and (b, K)
        return jnp.moveaxis(ratio, 0, -1), jnp.moveaxis(fit.gram_deviation, 0, -1)

    num = keys.shape[0]
    if batch_size is None or batch_size >= num:
        ratio, deviation = one_batch(keys)
    else:
        nb = -(-num // batch_size)
        padded = jnp.concatenate([keys, keys[: nb * batch_size - num]])
        ratio, deviation = jax.lax.map(one_batch, padded.reshape(nb, batch_size))
        ratio = ratio.reshape((nb * batch_size,) + ratio.shape[2:])[:num]
        deviation = deviation.reshape(nb * batch_size, -1)[:num]
    return jnp.moveaxis(ratio, 0, -1), jnp.moveaxis(deviation, 0, -1)


def cell_rows(
    cells: list[Cell], functions: tuple[str, ...], m: int, state: ExperimentState,
    b: int, delta: float,
) -> list[dict]:
    """One summary row per (function, cell) of block ``b`` (float64 on the host)."""
    rows = []
    for i, name in enumerate(functions):
        for k, c in enumerate(cells):
            ratio = np.asarray(state.error_ratio[b, i, k], np.float64)
            q10, q50, q90 = np.quantile(ratio, [0.1, 0.5, 0.9])
            rows.append(
                {
                    "function": name,
                    "m": m,
                    "method": c.method,
                    "n": c.ratio * m,
                    "ratio": c.ratio,
                    "mean_ratio": float(ratio.mean()),
                    "se_ratio": float(ratio.std(ddof=1) / np.sqrt(ratio.size)),
                    "median_ratio": float(q50),
                    "q10_ratio": float(q10),
                    "q90_ratio": float(q90),
                    "well_conditioned": float(
                        np.mean(np.asarray(state.gram_deviation[b, k]) <= delta)
                    ),
                    "best_error": float(np.sqrt(state.best_error[b, i])),
                }
            )
    return rows


def block_row(rows: list[dict], m: int) -> dict:
    """The ``metrics.jsonl`` line of a block: its dimension and its rows."""
    return {"m": m, "cells": rows}


def _meta(cells: list[Cell], config: Any) -> dict:
    return {
        "cells": [list(c) for c in cells],
        "dims": [int(m) for m in config.dims],
        "functions": list(config.functions),
        "num_seeds": int(config.num_seeds),
        "quadrature_nodes": int(config.quadrature_nodes),
        "well_conditioned_delta": float(config.well_conditioned_delta),
        "float64": bool(config.float64),
        "seed": int(config.seed),
    }


def train_and_evaluate(config: Any, workdir: str) -> dict:
    """Runs the DPP weighted least-squares experiment into ``workdir``.

    Writes ``config.json``, ``metrics.jsonl`` (one line per dimension ``m``,
    with a row per (function, method, n)), checkpoints after each block
    and ``summary.json``; a workdir holding a checkpoint is resumed
    (:mod:`jaxsampling.train._blocks`).

    Args:
        config: a ConfigDict as in ``configs/dpp_wls.py``; the optional
            ``stop_after_blocks`` (tests) stops once that many blocks are done.
        workdir: the run directory.

    Returns:
        The summary: ``best_error`` (``e_m(f)`` per function and ``m``) and
        ``results``, one row per (function, m, method, n) with
        ``mean_ratio, se_ratio, median_ratio, q10_ratio, q90_ratio`` (of
        ``||f - f_hat||^2 / e_m(f)^2``) and ``well_conditioned``.

    Raises:
        ValueError: a bad method, function, ratio or dimension; a
            checkpoint of another config.
        FloatingPointError: a non-finite error ratio or Gram deviation.
    """
    cells = make_cells(config)
    functions = tuple(config.functions)
    dims = [int(m) for m in config.dims]
    num_seeds = int(config.num_seeds)
    delta = float(config.well_conditioned_delta)
    batch_size = int(config.get("seeds_per_batch", 0)) or None
    with jax.enable_x64(bool(config.float64)):
        root_key = jax.random.key(config.seed)

        def run_block(b, state):
            m = dims[b]
            c_star, best = references(functions, m, int(config.quadrature_nodes))
            keys = _blocks.block_keys(root_key, b, num_seeds)
            ratio, deviation = evaluate(
                keys,
                jnp.asarray(c_star),
                jnp.asarray(best),
                m=m,
                cells=tuple(cells),
                functions=functions,
                batch_size=batch_size,
            )
            ratio, deviation = np.asarray(ratio), np.asarray(deviation)
            for name, values in (("error ratio", ratio), ("Gram deviation", deviation)):
                flat = np.moveaxis(values, -1, 0).reshape(num_seeds, -1)
                _blocks.check_finite(name, flat, b, f"m={m}")
            state = _blocks.set_block(
                state, b, error_ratio=ratio, gram_deviation=deviation, best_error=best
            )
            return state, block_row(cell_rows(cells, functions, m, state, b, delta), m)

        def summarize(state):
            done = int(state.next_block)
            rows = [
                r
                for b in range(done)
                for r in cell_rows(cells, functions, dims[b], state, b, delta)
            ]
            return {
                "experiment": "dpp_wls",
                "complete": done == len(dims),
                "dims": dims,
                "functions": list(functions),
                "num_seeds": num_seeds,
                "well_conditioned_delta": delta,
                "best_error": {
                    name: {
                        str(dims[b]): float(np.sqrt(state.best_error[b, i]))
                        for b in range(done)
                    }
                    for i, name in enumerate(functions)
                },
                "results": rows,
            }

        return _blocks.run_blocks(
            config,
            workdir,
            num_blocks=len(dims),
            meta=_meta(cells, config),
            state=init_state(len(dims), len(functions), len(cells), num_seeds),
            run_block=run_block,
            summarize=summarize,
        )
