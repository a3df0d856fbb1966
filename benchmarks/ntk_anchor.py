"""Neural Tangents anchor for the ``ntk`` suite, run in its own environment.

Usage (from the repository root, with the NT environment's interpreter)::

    /work/nt-venv/bin/python benchmarks/ntk_anchor.py --out=/tmp/ntk_anchor.json
    /work/nt-venv/bin/python benchmarks/ntk_anchor.py --out=/tmp/q.json --quick
    /work/nt-venv/bin/python benchmarks/ntk_anchor.py --out=/tmp/x.json --repeats=51

Why a separate environment: neural-tangents (NT) 0.6.5, its last release (the project
is archived), imports ``jax.core.ShapedArray`` & co., ``jax.experimental.jax2tf``,
``tensorflow`` and ``tf2jax`` at import time, and runs only on a JAX of its time
(0.4.x), with numpy 1. jaxsampling needs a current JAX and numpy 2, so this script
imports neither ``jaxsampling`` nor the ``benchmarks`` package: it copies the few lines
of the timing protocol it needs (:func:`time_jax`, same protocol as
``benchmarks/timing.py``) and writes one JSON file that the ``ntk`` suite reads.

Install (Python 3.11, Linux x86-64; what worked, about 2 GB, mostly TensorFlow)::

    python3 -m venv /work/nt-venv
    /work/nt-venv/bin/pip install --upgrade pip
    /work/nt-venv/bin/pip install "neural-tangents==0.6.5" "jax==0.4.23" \
        "jaxlib==0.4.23" "numpy<2" "scipy<1.13" "tensorflow==2.15.1" "tf2jax==0.3.5"

TensorFlow and tf2jax are needed only because ``neural_tangents/__init__.py`` imports
``experimental.empirical_tf`` (``import tensorflow``, ``import tf2jax``,
``jax.experimental.jax2tf``) unconditionally; none of the code timed here uses them.
The ``tensorflow`` wheel (2.15.1) runs on the CPU; its CUDA libraries are an extra
(``tensorflow[and-cuda]``) that is not installed.

Setting (arXiv 2502.16763): a bias-free two-layer ReLU network in NTK
parameterisation, f(x) = m^-1/2 W2 relu(k^-1/2 W1 x), both layers trained, N(0, 1)
weights: ``stax.serial(Dense(width, W_std=1, b_std=None, parameterization='ntk'),
Relu(), Dense(k, W_std=1, b_std=None, parameterization='ntk'))`` (``b_std=None``: no
bias parameter at all, ``init_fn`` returns ``b = None``). Training inputs: the k
standard basis vectors (``x_train = I_k``); targets ``y_train[i] = e_{pi(i)}`` for
``pi = numpy.random.default_rng(0).permutation(k)``. Test inputs: the 2^k - 1 nonzero
binary vectors, row c - 1 holding the bits of c (bit i = (c >> i) & 1). Their target
is ``x @ y_train`` (output pi(i) equals x_i). float32, CPU backend.

Workloads (one JSON record per case):

* ``kernel`` (k = 8, 12, 16): ``kernel_fn(x_test, x_train, ('nngp', 'ntk'))``, the
  (2^k - 1) x k test-train NNGP and NTK; records their sums and rows 0, 2, 2^k - 2
  (inputs e_1, e_1 + e_2, all ones).
* ``mean_inf`` (k = 8, 12, 16): the t = infinity NTK mean of
  ``nt.predict.gradient_descent_mse_ensemble(kernel_fn, x_train, y_train)`` on all
  test inputs (``get='ntk'``, ``compute_cov=False``): values at rows 0, 2, 2^k - 2 and
  the fraction of test inputs whose sign-rounded mean (``mean > 0``) is the target.
* ``mean_var_inf`` (k = 8, 12): the same with ``compute_cov=True`` (mean and full
  test-test covariance); records the marginal variances at rows 0, 2, 2^k - 2. k = 16
  is recorded as infeasible (a 65535^2 float32 covariance is 16 GiB, and NT's formula
  holds several such matrices at once).
* ``finite_step`` (k = 12, width 512, M = 64, 256, 1024): M independent finite
  networks (``init_fn`` vmapped over ``jax.random.split(PRNGKey(0), M)``), one
  full-batch gradient-descent step on 0.5 * mean_i ||f(x_i) - y_i||^2 (the mean over
  the k training examples), learning rate 1.0, jitted with the parameters donated;
  and the M-network ensemble mean on all 4095 test inputs (networks evaluated 16 at a
  time with ``lax.scan``: one vmapped call would hold an M x 4095 x 512 hidden layer,
  8.6 GB at M = 1024).

The whole of each infinite-width workload is one jitted function of the arrays
(``x_test``, ``x_train``, ``y_train``): for ``mean_inf`` and ``mean_var_inf`` the
``predict_fn`` is built inside the traced function, so the timed call includes the
train-train kernel and its Cholesky factorisation (NT caches both in the closure of
``predict_fn``; a ``predict_fn`` built outside ``jit`` would leak tracers into that
cache).

Everything runs single-threaded: ``XLA_FLAGS`` is set and the process is pinned to
core 0 before JAX is imported.
"""

from __future__ import annotations

import os

# Single-threaded CPU, set before jax (and tensorflow, which NT imports) start.
os.environ["XLA_FLAGS"] = (
    "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's import logs
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"
CORE = 0
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {CORE})

# pylint: disable=wrong-import-position
import argparse
import datetime
import functools
import inspect
import json
import platform
import statistics
import sys
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import jaxlib
import neural_tangents as nt
import numpy as np
from neural_tangents import stax

DEFAULT_REPEATS = 21
QUICK_REPEATS = 5
DEFAULT_WARMUP = 3
MIN_REPEAT_S = 0.02
#: A case whose steady state (warm-up + repeats) is estimated above this gets fewer
#: repeats, down to MIN_REPEATS; below that it is dropped.
CASE_BUDGET_S = 120.0
MIN_REPEATS = 3

FULL = {"kernel": (8, 12, 16), "mean_inf": (8, 12, 16), "mean_var_inf": (8, 12),
        "finite_m": (64, 256, 1024)}
QUICK = {"kernel": (8, 12), "mean_inf": (8, 12), "mean_var_inf": (8, 12),
         "finite_m": (64,)}
INFINITE_WIDTH = 512  # ``out_dim`` of the hidden Dense; its kernel_fn ignores it.
FINITE_K, FINITE_WIDTH, FINITE_LR, EVAL_CHUNK = 12, 512, 1.0, 16

PROTOCOL = f"""\
Copied from benchmarks/timing.py (time_jax), same protocol. The function is jitted
with every size static (closed over), its arrays built once and on the device.
  compile_s = wall time of jax.jit(f).lower(*args).compile() on a fresh wrapper of f.
  first_call_s = wall time of the first call of jax.jit(f)(*args) with
  jax.block_until_ready (trace + compile + first run).
Steady state: {DEFAULT_WARMUP} untimed warm-up calls, then `repeats` timed repeats
(default {DEFAULT_REPEATS}, --quick {QUICK_REPEATS}); a repeat is `number` consecutive
calls (number chosen once, from one timed call, so that a repeat lasts at least
{MIN_REPEAT_S * 1e3:.0f} ms), each followed by jax.block_until_ready. Reported: median,
min and interquartile range of the per-call times, in seconds. A case whose steady
state would exceed {CASE_BUDGET_S:.0f} s gets fewer repeats (at least {MIN_REPEATS},
else it is dropped), as `notes` then say. A step with donated parameters feeds each
call's output to the next call. One process, pinned to core {CORE},
XLA_FLAGS={os.environ["XLA_FLAGS"]!r}, float32, CPU backend.
"""


# --------------------------------------------------------------------------- timing


class TooSlow(Exception):
    """Raised when a case's steady state would exceed :data:`CASE_BUDGET_S`."""


def _summarise(samples: Sequence[float], compile_s: float, first_call_s: float,
               number: int) -> dict[str, Any]:
    q25, q75 = np.percentile(np.asarray(samples), [25.0, 75.0])
    return {
        "compile_s": float(compile_s),
        "first_call_s": float(first_call_s),
        "median_s": float(statistics.median(samples)),
        "min_s": float(min(samples)),
        "iqr_s": float(q75 - q25),
        "repeats": len(samples),
        "number": number,
        "samples_s": [float(s) for s in samples],
    }


def _steady_state(call: Callable[[], Any], repeats: int) -> tuple[list[float], int]:
    """Warm-up calls, then ``repeats`` timed repeats of ``number`` calls each.

    The first warm-up call is timed: if the warm-up, calibration and ``repeats``
    calls would exceed :data:`CASE_BUDGET_S`, fewer repeats are made (at least
    :data:`MIN_REPEATS`; :class:`TooSlow` if even those would not fit).
    """
    start = time.perf_counter()
    call()
    one = max(time.perf_counter() - start, 1e-9)
    fit = int(CASE_BUDGET_S / one) - DEFAULT_WARMUP - 1
    if fit < MIN_REPEATS:
        raise TooSlow(f"one call takes {one:.1f} s: {DEFAULT_WARMUP} warm-up calls, "
                      f"a calibration call and {MIN_REPEATS} repeats would exceed "
                      f"{CASE_BUDGET_S:.0f} s")
    repeats = min(repeats, fit)
    for _ in range(DEFAULT_WARMUP - 1):
        call()
    start = time.perf_counter()
    call()  # calibration of the number of calls per repeat
    one = max(time.perf_counter() - start, 1e-9)
    number = max(1, int(np.ceil(MIN_REPEAT_S / one)))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            call()
        samples.append((time.perf_counter() - start) / number)
    return samples, number


def time_jax(fn: Callable[..., Any], args: Sequence[Any], repeats: int,
             donate: bool = False) -> tuple[dict[str, Any], Any]:
    """Times ``jax.jit(fn)`` on ``args``; returns the timing and the first output.

    With ``donate=True``, ``fn(state, *rest)`` must return a new ``state`` of the same
    structure: ``state`` is donated and every call is fed the previous call's output.
    """
    args = tuple(args)
    donate_argnums = (0,) if donate else ()
    jitted = jax.jit(fn, donate_argnums=donate_argnums)

    first_args = args
    if donate:  # the caller's state stays valid
        first_args = (jax.tree_util.tree_map(jnp.copy, args[0]),) + args[1:]
    start = time.perf_counter()
    first = jax.block_until_ready(jitted(*first_args))
    first_call_s = time.perf_counter() - start

    def fresh(*a: Any) -> Any:
        return fn(*a)

    start = time.perf_counter()
    jax.jit(fresh, donate_argnums=donate_argnums).lower(*args).compile()
    compile_s = time.perf_counter() - start

    if donate:
        state = [jax.tree_util.tree_map(jnp.copy, first)]  # ``first`` stays valid

        def call() -> None:
            state[0] = jax.block_until_ready(jitted(state[0], *args[1:]))
    else:
        def call() -> None:
            jax.block_until_ready(jitted(*args))

    samples, number = _steady_state(call, repeats)
    timing = _summarise(samples, compile_s, first_call_s, number)
    timing["repeats_requested"] = repeats
    return timing, first


# ----------------------------------------------------------------------- the setting


def network(width: int, k: int):
    """NT's ``(init_fn, apply_fn, kernel_fn)`` of the bias-free two-layer ReLU net."""
    return stax.serial(
        stax.Dense(width, W_std=1.0, b_std=None, parameterization="ntk"),
        stax.Relu(),
        stax.Dense(k, W_std=1.0, b_std=None, parameterization="ntk"),
    )


def data(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x_train = I_k``, ``y_train[i] = e_pi(i)``, and the 2^k - 1 binary test rows."""
    pi = np.random.default_rng(0).permutation(k)
    x_train = np.eye(k, dtype=np.float32)
    y_train = np.eye(k, dtype=np.float32)[pi]
    c = np.arange(1, 2**k, dtype=np.int64)
    x_test = ((c[:, None] >> np.arange(k)) & 1).astype(np.float32)
    return x_train, y_train, x_test


def rows(k: int) -> dict[str, int]:
    """The recorded test rows: 0 (e_1), 2 (e_1 + e_2) and 2^k - 2 (all ones)."""
    return {"0": 0, "2": 2, str(2**k - 2): 2**k - 2}


def _at_rows(values: np.ndarray, k: int) -> dict[str, list[float]]:
    return {name: np.asarray(values[i], np.float64).tolist()
            for name, i in rows(k).items()}


def _device(*arrays: np.ndarray) -> list[jax.Array]:
    return [jax.device_put(jnp.asarray(a)) for a in arrays]


# ------------------------------------------------------------------------- workloads


def case_kernel(k: int, repeats: int) -> dict[str, Any]:
    """Test-train NNGP and NTK of the infinite-width network."""
    _, _, kernel_fn = network(INFINITE_WIDTH, k)
    x_train, _, x_test = data(k)

    def fn(x1, x2):
        kern = kernel_fn(x1, x2, ("nngp", "ntk"))
        return kern.nngp, kern.ntk

    timing, (nngp, ntk) = time_jax(fn, _device(x_test, x_train), repeats)
    nngp, ntk = np.asarray(nngp), np.asarray(ntk)
    return {
        "name": f"kernel k={k}", "workload": "kernel", "k": k, "timing": timing,
        "shape": list(ntk.shape),
        "nngp_sum": float(nngp.astype(np.float64).sum()),
        "ntk_sum": float(ntk.astype(np.float64).sum()),
        "nngp_rows": _at_rows(nngp, k), "ntk_rows": _at_rows(ntk, k),
    }


def _predict_defaults() -> dict[str, Any]:
    params = inspect.signature(nt.predict.gradient_descent_mse_ensemble).parameters
    return {name: params[name].default
            for name in ("learning_rate", "diag_reg", "diag_reg_absolute_scale",
                         "trace_axes")}


def _predict(kernel_fn, compute_cov: bool):
    """``(x_test, x_train, y_train) ->`` NT's t = infinity NTK prediction."""
    def fn(x_test, x_train, y_train):
        predict_fn = nt.predict.gradient_descent_mse_ensemble(
            kernel_fn, x_train, y_train)
        return predict_fn(x_test=x_test, get="ntk", compute_cov=compute_cov)
    return fn


def _sign_accuracy(mean: np.ndarray, x_test: np.ndarray,
                   y_train: np.ndarray) -> dict[str, float]:
    target = (x_test @ y_train).astype(np.float32)
    hit = (mean > 0) == (target > 0.5)
    return {
        "sign_accuracy": float(hit.all(axis=1).mean()),
        "sign_accuracy_per_output": float(hit.mean()),
        "max_abs_error": float(np.abs(mean - target).max()),
    }


def case_mean_inf(k: int, repeats: int) -> dict[str, Any]:
    """t = infinity NTK mean on every test input (one jitted call)."""
    _, _, kernel_fn = network(INFINITE_WIDTH, k)
    x_train, y_train, x_test = data(k)
    timing, mean = time_jax(_predict(kernel_fn, compute_cov=False),
                            _device(x_test, x_train, y_train), repeats)
    mean = np.asarray(mean)
    return {
        "name": f"mean_inf k={k}", "workload": "mean_inf", "k": k, "timing": timing,
        "jitted": True, "predict_defaults": _predict_defaults(),
        "mean_rows": _at_rows(mean, k), **_sign_accuracy(mean, x_test, y_train),
    }


def case_mean_var_inf(k: int, repeats: int) -> dict[str, Any]:
    """t = infinity NTK mean and full test-test covariance (one jitted call)."""
    _, _, kernel_fn = network(INFINITE_WIDTH, k)
    x_train, y_train, x_test = data(k)
    timing, (mean, cov) = time_jax(_predict(kernel_fn, compute_cov=True),
                                   _device(x_test, x_train, y_train), repeats)
    mean, variance = np.asarray(mean), np.diag(np.asarray(cov))
    return {
        "name": f"mean_var_inf k={k}", "workload": "mean_var_inf", "k": k,
        "timing": timing, "jitted": True, "covariance_shape": list(cov.shape),
        "variance_rows": {name: float(variance[i]) for name, i in rows(k).items()},
        "min_variance": float(variance.min()), "max_variance": float(variance.max()),
        "mean_rows": _at_rows(mean, k), **_sign_accuracy(mean, x_test, y_train),
    }


def infeasible_mean_var_inf(k: int) -> dict[str, Any]:
    """Record of a ``mean_var_inf`` case too big for this machine."""
    n = 2**k - 1
    matrix_gib = n * n * 4 / 2**30
    return {
        "name": f"mean_var_inf k={k}", "workload": "mean_var_inf", "k": k,
        "skipped": (
            f"infeasible: the {n} x {n} float32 covariance alone is "
            f"{matrix_gib:.1f} GiB, and NT's t = infinity NTK covariance formula "
            f"(k_tt + zip_axes(term_1' K_dd^nngp term_1 - term_2 - term_2')) holds "
            f"the test-test NNGP, term_2 and the result at once: about "
            f"{3 * matrix_gib:.0f} GiB or more, on a machine with 24 GB of memory"),
        "estimated_memory_gib": round(3 * matrix_gib, 1),
    }


def _loss(apply_fn, params, x, y):
    """0.5 * mean over the examples of ||f(x) - y||^2, for one network."""
    return 0.5 * jnp.mean(jnp.sum((apply_fn(params, x) - y) ** 2, axis=-1))


def case_finite(m: int, repeats: int) -> list[dict[str, Any]]:
    """M finite networks: one vmapped GD step; the ensemble mean on the test set."""
    k, width = FINITE_K, FINITE_WIDTH
    init_fn, apply_fn, _ = network(width, k)
    x_train, y_train, x_test = data(k)
    x_train, y_train, x_test_d = _device(x_train, y_train, x_test)
    keys = jax.random.split(jax.random.PRNGKey(0), m)
    params = jax.jit(jax.vmap(lambda key: init_fn(key, (-1, k))[1]))(keys)
    loss = functools.partial(_loss, apply_fn)
    grad = jax.vmap(jax.grad(loss), in_axes=(0, None, None))

    def step(params, x, y):
        return jax.tree_util.tree_map(lambda w, g: w - FINITE_LR * g,
                                      params, grad(params, x, y))

    def ensemble_mean(params, x):
        chunks = jax.tree_util.tree_map(
            lambda w: w.reshape((m // EVAL_CHUNK, EVAL_CHUNK) + w.shape[1:]), params)

        def body(total, chunk):
            out = jax.vmap(apply_fn, in_axes=(0, None))(chunk, x)
            return total + out.sum(axis=0), None

        total, _ = jax.lax.scan(body, jnp.zeros((x.shape[0], k), x.dtype), chunks)
        return total / m

    mean_loss = jax.jit(lambda p, x, y: jax.vmap(loss, (0, None, None))(p, x, y).mean())
    loss_0 = float(mean_loss(params, x_train, y_train))
    step_timing, params_1 = time_jax(step, (params, x_train, y_train), repeats,
                                     donate=True)
    loss_1 = float(mean_loss(params_1, x_train, y_train))
    common = {"k": k, "width": width, "M": m}
    records = [{
        "name": f"finite_step M={m}", "workload": "finite_step", **common,
        "timing": step_timing, "learning_rate": FINITE_LR, "donated": True,
        "mean_loss_before": loss_0, "mean_loss_after_one_step": loss_1,
    }]
    try:
        eval_timing, mean = time_jax(ensemble_mean, (params_1, x_test_d), repeats)
        mean = np.asarray(mean)
        records.append({
            "name": f"finite_eval M={m}", "workload": "finite_eval", **common,
            "timing": eval_timing, "eval_chunk": EVAL_CHUNK,
            "params": "after the untimed first step", "mean_rows": _at_rows(mean, k),
            **_sign_accuracy(mean, x_test, np.asarray(y_train)),
        })
    except TooSlow as err:
        records.append({"name": f"finite_eval M={m}", "workload": "finite_eval",
                        **common, "skipped": f"dropped: {err}"})
    return records


# ------------------------------------------------------------------------------ main


def _run(name: str, case: Callable[[], Any]) -> list[dict[str, Any]]:
    print(f"[ntk_anchor] {name} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        out = case()
    except TooSlow as err:
        out = {"name": name, "skipped": f"dropped: {err}"}
    out = out if isinstance(out, list) else [out]
    for record in out:
        med = record.get("timing", {}).get("median_s")
        print(f"[ntk_anchor]   {record['name']}: median "
              f"{med if med is None else f'{med:.3g} s'}", file=sys.stderr, flush=True)
    print(f"[ntk_anchor]   ({time.perf_counter() - start:.1f} s)", file=sys.stderr,
          flush=True)
    return out


def versions() -> dict[str, str | None]:
    tf = sys.modules.get("tensorflow")
    return {
        "python": platform.python_version(), "jax": jax.__version__,
        "jaxlib": jaxlib.version.__version__, "neural-tangents": nt.__version__,
        "numpy": np.__version__, "tensorflow": getattr(tf, "__version__", None),
    }


NOTES = [
    "neural-tangents runs in its own environment (see the module docstring of "
    "benchmarks/ntk_anchor.py for the pip commands); jaxsampling is not imported.",
    "kernel_fn of the NTK-parameterised Dense ignores out_dim: kernels are the "
    "infinite-width ones. b_std=None: no bias (init_fn returns b = None).",
    "mean_inf / mean_var_inf: the whole prediction (train-train kernel, Cholesky, "
    "test-train [and test-test] kernels, solve) is one jitted call; predict_fn is "
    "built inside the traced function.",
    "gradient_descent_mse_ensemble defaults: learning_rate=1.0, diag_reg=0.0 "
    "(diag_reg_absolute_scale=False: diag_reg * trace(K)/n is added). At finite t "
    "NT uses exp(-lr * t * Theta / y_train.size) with y_train.size = n * outputs "
    "(= k^2 here), i.e. gradient flow on 0.5 * mean over all n * outputs entries of "
    "(f - y)^2; t=None solves by Cholesky (no eigendecomposition, no learning rate).",
    "finite_step uses 0.5 * mean over the k examples of ||f - y||^2, which is k "
    "times NT's predict loss (mean over entries); one step at lr 1.0 is NT time "
    "t = k under NT's convention.",
]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--quick", action="store_true",
                        help="k in {8, 12}, M = 64, 5 repeats")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    repeats = args.repeats or (QUICK_REPEATS if args.quick else DEFAULT_REPEATS)
    assert jax.default_backend() == "cpu"

    began = time.perf_counter()
    records: list[dict[str, Any]] = []
    for k in sizes["kernel"]:
        records += _run(f"kernel k={k}", lambda k=k: case_kernel(k, repeats))
    for k in sizes["mean_inf"]:
        records += _run(f"mean_inf k={k}", lambda k=k: case_mean_inf(k, repeats))
    for k in sizes["mean_var_inf"]:
        records += _run(f"mean_var_inf k={k}",
                        lambda k=k: case_mean_var_inf(k, repeats))
    records.append(infeasible_mean_var_inf(16))
    for m in sizes["finite_m"]:
        records += _run(f"finite M={m}", lambda m=m: case_finite(m, repeats))

    notes = list(NOTES)
    notes += [f"{r['name']}: {r['skipped']}" for r in records if "skipped" in r]
    for record in records:
        timing = record.get("timing", {})
        if timing and timing["repeats"] < timing["repeats_requested"]:
            notes.append(f"{record['name']}: {timing['repeats']} repeats instead of "
                         f"{timing['repeats_requested']}, to keep the case under "
                         f"{CASE_BUDGET_S:.0f} s")
    result = {
        "suite": "ntk_anchor", "quick": args.quick,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
        "duration_s": round(time.perf_counter() - began, 1),
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "machine": {
            "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "affinity": sorted(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity") else None,
            "jax_backend": jax.default_backend(),
            "jax_devices": [str(d) for d in jax.devices()],
            "xla_flags": os.environ.get("XLA_FLAGS"),
        },
        "versions": versions(), "protocol": PROTOCOL, "notes": notes,
        "records": records,
    }
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=1)
        fh.write("\n")
    print(f"[ntk_anchor] wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
