"""Timing helpers shared by the benchmark suites.

Two entry points, one per kind of implementation:

* :func:`time_jax` for a JAX function of arrays (sizes closed over, hence static),
* :func:`time_python` for a numpy / numba function (e.g. the ``particles`` anchors).

Both return a :class:`Timing` whose steady-state numbers are per call, in seconds.
The protocol they implement is described by :data:`PROTOCOL`, which the runner writes
into every results file.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any, Callable, Sequence

import jax
import numpy as np

#: Default number of timed repeats (the median is reported).
DEFAULT_REPEATS = 21
#: Untimed steady-state calls made after the first call and before the repeats.
DEFAULT_WARMUP = 3
#: A repeat calls the function ``number`` times, with ``number`` chosen so that one
#: repeat lasts at least this long; the per-call time is the repeat time / number.
MIN_REPEAT_S = 0.02

PROTOCOL = f"""\
Every implementation of a case gets the same inputs, built once outside the timed region
(JAX inputs are already on the device; anchors that need normalised weights get them
normalised beforehand, outside the timing).
JAX (jaxsampling, BlackJAX): the function is jitted with every size static (closed over).
  compile_s = wall time of jax.jit(f).lower(*args).compile() (trace + lower + XLA compile)
  on a fresh wrapper of f, so no cache is shared with the timed callable.
  first_call_s = wall time of the first call of jax.jit(f)(*args) including
  jax.block_until_ready (trace + compile + first run).
Python (particles, numpy / numba): first_call_s = wall time of the first call, which
  includes numba JIT compilation when the function (or a helper such as inverse_cdf) has
  not been compiled yet in this process; compile_s = max(0, first_call_s - median).
  numba helpers shared by several schemes are compiled once per process, so only the
  first scheme that uses them shows that compile time.
Steady state: {DEFAULT_WARMUP} untimed warm-up calls, then `repeats` timed repeats; a
repeat is `number` consecutive calls (number chosen once so that a repeat lasts at least
{MIN_REPEAT_S * 1e3:.0f} ms), each call followed by jax.block_until_ready for JAX outputs;
time.perf_counter around the repeat, divided by number, gives one per-call sample.
Reported per implementation: median, min and interquartile range (q75 - q25) of the
per-call samples, in seconds. ratio = anchor median / jaxsampling median, so a ratio
above 1 means jaxsampling is faster than that anchor on that case.
"""


@dataclasses.dataclass(frozen=True)
class Timing:
    """Timing of one implementation on one workload.

    Attributes:
        compile_s: Compile time in seconds (see :data:`PROTOCOL`).
        first_call_s: Wall time of the very first call, in seconds.
        median_s: Median steady-state time per call, in seconds.
        min_s: Minimum steady-state time per call, in seconds.
        iqr_s: Interquartile range of the steady-state times, in seconds.
        repeats: Number of timed repeats.
        number: Calls per repeat.
        samples_s: The per-call time of every repeat, in seconds.
    """

    compile_s: float
    first_call_s: float
    median_s: float
    min_s: float
    iqr_s: float
    repeats: int
    number: int
    samples_s: list[float]

    def to_json(self) -> dict[str, Any]:
        """Returns a JSON-serialisable dict of the timing."""
        return dataclasses.asdict(self)


def _summarise(
    samples: Sequence[float], compile_s: float, first_call_s: float, number: int
) -> Timing:
    q25, q75 = np.percentile(np.asarray(samples), [25.0, 75.0])
    return Timing(
        compile_s=float(compile_s),
        first_call_s=float(first_call_s),
        median_s=float(statistics.median(samples)),
        min_s=float(min(samples)),
        iqr_s=float(q75 - q25),
        repeats=len(samples),
        number=number,
        samples_s=[float(s) for s in samples],
    )


def _steady_state(
    call: Callable[[], Any], repeats: int, warmup: int, min_repeat_s: float
) -> tuple[list[float], int]:
    """Warms up ``call`` then times ``repeats`` repeats of it.

    Returns:
        The per-call time of each repeat and the number of calls per repeat.
    """
    for _ in range(warmup):
        call()
    # Calibrate the number of calls per repeat from one timed call.
    start = time.perf_counter()
    call()
    one = max(time.perf_counter() - start, 1e-9)
    number = max(1, int(np.ceil(min_repeat_s / one)))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            call()
        samples.append((time.perf_counter() - start) / number)
    return samples, number


def time_jax(
    fn: Callable[..., Any],
    args: Sequence[Any],
    *,
    repeats: int = DEFAULT_REPEATS,
    warmup: int = DEFAULT_WARMUP,
    min_repeat_s: float = MIN_REPEAT_S,
    check: Callable[[Any], None] | None = None,
) -> Timing:
    """Times a JAX function of arrays under ``jax.jit``.

    Args:
        fn: Function of the arrays in ``args`` only; sizes must be closed over so
            that they are static under ``jit``.
        args: The (device) arrays to call ``fn`` with.
        repeats: Number of timed repeats.
        warmup: Untimed calls before the repeats.
        min_repeat_s: Minimum duration of one repeat, in seconds.
        check: Optional validation of the first call's output; it should raise on
            a wrong output.

    Returns:
        The :class:`Timing` of ``fn``.
    """
    args = tuple(args)
    jitted = jax.jit(fn)
    start = time.perf_counter()
    out = jax.block_until_ready(jitted(*args))
    first_call_s = time.perf_counter() - start
    if check is not None:
        check(out)

    def fresh(*a: Any) -> Any:
        return fn(*a)

    start = time.perf_counter()
    jax.jit(fresh).lower(*args).compile()
    compile_s = time.perf_counter() - start

    def call() -> Any:
        return jax.block_until_ready(jitted(*args))

    samples, number = _steady_state(call, repeats, warmup, min_repeat_s)
    return _summarise(samples, compile_s, first_call_s, number)


def time_python(
    fn: Callable[..., Any],
    args: Sequence[Any],
    *,
    repeats: int = DEFAULT_REPEATS,
    warmup: int = DEFAULT_WARMUP,
    min_repeat_s: float = MIN_REPEAT_S,
    check: Callable[[Any], None] | None = None,
) -> Timing:
    """Times a numpy / numba function; the first call (numba JIT) is reported apart.

    Args:
        fn: The function to time.
        args: Its positional arguments.
        repeats: Number of timed repeats.
        warmup: Untimed calls before the repeats.
        min_repeat_s: Minimum duration of one repeat, in seconds.
        check: Optional validation of the first call's output; it should raise on
            a wrong output.

    Returns:
        The :class:`Timing` of ``fn``; ``compile_s`` is the first call minus the
        steady-state median, floored at zero.
    """
    args = tuple(args)
    start = time.perf_counter()
    out = fn(*args)
    first_call_s = time.perf_counter() - start
    if check is not None:
        check(out)

    def call() -> Any:
        return fn(*args)

    samples, number = _steady_state(call, repeats, warmup, min_repeat_s)
    compile_s = max(0.0, first_call_s - statistics.median(samples))
    return _summarise(samples, compile_s, first_call_s, number)
