"""Resampling suite: jaxsampling's SMC resamplers against BlackJAX and particles.

Workloads:

* single: one resampling of ``N`` particles into ``N`` indices, for every scheme of
  :data:`SCHEMES` and every ``N`` of the size grid;
* batch: ``BATCH`` independent resamplings (one key and one weight row each) at
  ``N = BATCH_N``, under ``jax.jit(jax.vmap(...))`` for the JAX implementations and
  a Python loop over the rows for particles.

Every implementation of a case receives the same float32 weights (drawn once from
numpy with a fixed seed); BlackJAX and particles need normalised weights and get them
normalised outside the timed region (float32 for BlackJAX, float64 for particles).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

import blackjax.smc.resampling as bj_resampling
import jax
import jax.numpy as jnp
import numpy as np
import particles.resampling as pt_resampling

from benchmarks import timing

#: Schemes benchmarked, in table order.
SCHEMES = ("multinomial", "stratified", "systematic", "residual", "ssp", "killing")
#: Schemes that also get the vmapped batch case.
BATCH_SCHEMES = ("systematic", "stratified", "multinomial", "residual")
SIZES = (10**4, 10**5, 10**6)
QUICK_SIZES = (10**3, 10**4)
BATCH = 100
BATCH_N = 10**4
QUICK_REPEATS = 5
SEED = 20240601
#: Degrees of freedom of the Student-t whose exponential gives the weights.
WEIGHT_DF = 5.0

OURS = "jaxsampling"
ANCHORS = ("blackjax", "particles")
OURS_MODULE = "jaxsampling.kernels.resampling"

WORKLOAD = (
    f"Weights w = exp(t) with t ~ Student-t(df={WEIGHT_DF:g}), drawn once per size in "
    f"float64 by numpy (seed {SEED}) and cast to float32; jaxsampling gets them "
    "unnormalised, BlackJAX normalised in float32, particles normalised in float64 "
    "(normalisation is outside the timing). num_samples = N. JAX keys are typed "
    "(jax.random.key). jaxsampling: resampling.<scheme>(key, w, N) and BlackJAX: "
    "blackjax.smc.resampling.<scheme>(key, w, N), both jitted with N closed over "
    "(static); particles: particles.resampling.<scheme>(W, M=N) (numpy + numba, "
    "global numpy RNG). BlackJAX 1.7.1 has multinomial, stratified, systematic and "
    f"residual only. Batch: {BATCH} resamplings at N = {BATCH_N}, one key and one weight "
    "row each ((B, N) weight matrix), jax.jit(jax.vmap(...)) for JAX and a Python loop "
    "over the rows for particles."
)

Impl = tuple[str, Callable[..., Any], tuple[Any, ...]]


def load_ours() -> tuple[Any | None, str | None]:
    """Imports jaxsampling's resampling module.

    Returns:
        ``(module, None)``, or ``(None, reason)`` when the module does not exist
        yet. Any other import error (a bug inside an existing module) propagates.
    """
    try:
        return importlib.import_module(OURS_MODULE), None
    except ModuleNotFoundError as err:
        if err.name != OURS_MODULE:
            raise
        return None, f"{OURS_MODULE} not found: jaxsampling not benchmarked"


def make_weights(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Long-tailed positive float32 weights, exp of a Student-t, fixed seed."""
    rng = np.random.default_rng(seed)
    return np.exp(rng.standard_t(WEIGHT_DF, size=shape)).astype(np.float32)


def _ess_fraction(w: np.ndarray) -> float:
    w = w.astype(np.float64)
    return float(w.sum() ** 2 / (w**2).sum() / w.size)


def _index_check(shape: tuple[int, ...], n: int) -> Callable[[Any], None]:
    """Builds a validator: integer indices of ``shape`` in ``[0, n)``."""

    def check(out: Any) -> None:
        idx = np.asarray(out)
        if idx.shape != shape:
            raise ValueError(f"output shape {idx.shape}, expected {shape}")
        if not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"output dtype {idx.dtype} is not an integer type")
        if idx.min() < 0 or idx.max() >= n:
            raise ValueError(f"indices outside [0, {n}): [{idx.min()}, {idx.max()}]")

    return check


def _single_impls(ours: Any | None, scheme: str, w: np.ndarray) -> dict[str, Impl]:
    """The implementations of one single-resampling case, keyed by name."""
    n = w.shape[0]
    key = jax.random.key(SEED)
    w_norm64 = w.astype(np.float64) / w.astype(np.float64).sum()
    impls: dict[str, Impl] = {}
    if ours is not None:
        fn = getattr(ours, scheme)
        impls[OURS] = ("jax", lambda k, x: fn(k, x, n), (key, jnp.asarray(w)))
    if hasattr(bj_resampling, scheme):
        bj_fn = getattr(bj_resampling, scheme)
        w_bj = jnp.asarray(w_norm64.astype(np.float32))
        impls["blackjax"] = ("jax", lambda k, x: bj_fn(k, x, n), (key, w_bj))
    pt_fn = getattr(pt_resampling, scheme)
    impls["particles"] = ("python", lambda x: pt_fn(x, M=n), (w_norm64,))
    return impls


def _batch_impls(ours: Any | None, scheme: str, w: np.ndarray) -> dict[str, Impl]:
    """The implementations of one batched case (``w`` has shape (B, N))."""
    n = w.shape[1]
    keys = jax.random.split(jax.random.key(SEED), w.shape[0])
    w64 = w.astype(np.float64)
    w_norm64 = w64 / w64.sum(axis=1, keepdims=True)
    impls: dict[str, Impl] = {}
    if ours is not None:
        fn = getattr(ours, scheme)
        vfn = jax.vmap(lambda k, x: fn(k, x, n))
        impls[OURS] = ("jax", vfn, (keys, jnp.asarray(w)))
    bj_fn = getattr(bj_resampling, scheme)
    bj_vfn = jax.vmap(lambda k, x: bj_fn(k, x, n))
    impls["blackjax"] = ("jax", bj_vfn, (keys, jnp.asarray(w_norm64.astype(np.float32))))
    pt_fn = getattr(pt_resampling, scheme)

    def pt_loop(rows: np.ndarray) -> np.ndarray:
        return np.stack([pt_fn(row, M=n) for row in rows])

    impls["particles"] = ("python", pt_loop, (w_norm64,))
    return impls


def _time_case(
    name: str,
    workload: str,
    impls: dict[str, Impl],
    check: Callable[[Any], None],
    repeats: int,
) -> dict[str, Any]:
    """Times every implementation of a case and computes the ratios."""
    print(f"[resampling] {name}", flush=True)
    results = {}
    for impl_name, (kind, fn, args) in impls.items():
        np.random.seed(SEED)  # particles draws from the global numpy RNG.
        timer = timing.time_jax if kind == "jax" else timing.time_python
        try:
            result = timer(fn, args, repeats=repeats, check=check)
        except Exception as err:  # An anchor's own failure is a result; ours is not.
            if impl_name == OURS:
                raise
            results[impl_name] = {"error": f"{type(err).__name__}: {err}"}
            print(f"    {impl_name:12s} FAILED: {err}", flush=True)
            continue
        results[impl_name] = result.to_json()
        print(
            f"    {impl_name:12s} median {result.median_s * 1e3:9.3f} ms"
            f"  compile {result.compile_s * 1e3:9.1f} ms",
            flush=True,
        )
    ratios = {}
    if OURS in results:
        ours_median = results[OURS]["median_s"]
        ratios = {
            anchor: results[anchor]["median_s"] / ours_median
            for anchor in ANCHORS
            if "median_s" in results.get(anchor, {})
        }
    return {
        "name": name,
        "workload": workload,
        "implementations": results,
        "ratios": ratios,
    }


def run(quick: bool = False, repeats: int | None = None) -> dict[str, Any]:
    """Runs the resampling suite.

    Args:
        quick: Smoke mode: small sizes and few repeats.
        repeats: Timed repeats per implementation (default depends on ``quick``).

    Returns:
        The suite's results: ``workload``, ``notes`` and ``cases``.
    """
    if repeats is None:
        repeats = QUICK_REPEATS if quick else timing.DEFAULT_REPEATS
    sizes = QUICK_SIZES if quick else SIZES
    ours, reason = load_ours()
    notes = []
    if reason is not None:
        print(f"[resampling] WARNING: {reason}", flush=True)
        notes.append(reason)

    cases = []
    for n in sizes:
        w = make_weights((n,), SEED + n)
        ess = _ess_fraction(w)
        for scheme in SCHEMES:
            workload = f"{scheme}, one resampling, N = num_samples = {n}, ESS/N = {ess:.3f}"
            cases.append(
                _time_case(
                    f"{scheme} N={n}",
                    workload,
                    _single_impls(ours, scheme, w),
                    _index_check((n,), n),
                    repeats,
                )
            )

    w = make_weights((BATCH, BATCH_N), SEED)
    for scheme in BATCH_SCHEMES:
        workload = (
            f"{scheme}, {BATCH} resamplings (vmap over keys and weight rows), "
            f"N = num_samples = {BATCH_N}"
        )
        cases.append(
            _time_case(
                f"{scheme} batch {BATCH}x{BATCH_N}",
                workload,
                _batch_impls(ours, scheme, w),
                _index_check((BATCH, BATCH_N), BATCH_N),
                repeats,
            )
        )
    return {"workload": WORKLOAD, "notes": notes, "cases": cases}
