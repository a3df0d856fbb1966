"""What the machine is doing while a benchmark runs: BLAS threads, other load.

* :class:`BlasThreads` reads and limits the BLAS threads of numpy and scipy
  (anchors are timed with the threads they start with and with 1 thread);
* :func:`background_load` records the cores other processes used while a block ran;
* :func:`timed` runs :mod:`benchmarks.timing` under :func:`background_load`;
* :func:`print_record` prints one implementation's line of a case;
* :func:`blas_note` and :func:`load_notes` write the matching notes of a results file.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import time
from typing import Any, Callable, Iterator

from benchmarks import timing

#: (setter, getter, config) symbol names of the OpenBLAS builds numpy and scipy
#: ship (scipy-openblas, 64-bit and 32-bit integers) and of a plain OpenBLAS.
_OPENBLAS_SYMBOLS = (
    (
        "scipy_openblas_set_num_threads64_",
        "scipy_openblas_get_num_threads64_",
        "scipy_openblas_get_config64_",
    ),
    (
        "scipy_openblas_set_num_threads",
        "scipy_openblas_get_num_threads",
        "scipy_openblas_get_config",
    ),
    ("openblas_set_num_threads", "openblas_get_num_threads", "openblas_get_config"),
)
_THREAD_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
)


class BlasThreads:
    """Reads and limits the BLAS threads of numpy and scipy in this process.

    Uses ``threadpoolctl`` when it is installed; otherwise finds the OpenBLAS
    libraries loaded in the process (``/proc/self/maps``) and calls their
    ``*_set_num_threads`` / ``*_get_num_threads`` through ``ctypes`` (what
    threadpoolctl does for OpenBLAS).
    """

    def __init__(self) -> None:
        try:
            import threadpoolctl
        except ImportError:
            self._threadpoolctl = None
            self.method = (
                "ctypes (OpenBLAS *_set_num_threads; threadpoolctl not installed)"
            )
        else:
            self._threadpoolctl = threadpoolctl
            self.method = f"threadpoolctl {threadpoolctl.__version__}"
        self._libs = [] if self._threadpoolctl else self._find_openblas()

    @staticmethod
    def _find_openblas() -> list[dict[str, Any]]:
        try:
            with open("/proc/self/maps") as maps:
                lines = [line for line in maps if "openblas" in line.lower()]
            paths = sorted({line.split()[-1] for line in lines})
        except OSError:
            return []
        libs = []
        for path in paths:
            if not os.path.isfile(path):
                continue
            lib = ctypes.CDLL(path)  # already loaded: the same handle
            for setter, getter, config in _OPENBLAS_SYMBOLS:
                if hasattr(lib, setter) and hasattr(lib, getter):
                    get_config = getattr(lib, config, None)
                    version = None
                    if get_config is not None:
                        get_config.restype = ctypes.c_char_p
                        version = get_config().decode(errors="replace")
                    libs.append(
                        {
                            "path": path,
                            "set": getattr(lib, setter),
                            "get": getattr(lib, getter),
                            "config": version,
                        }
                    )
                    break
        return libs

    def info(self) -> dict[str, Any]:
        """The BLAS libraries, their thread counts and the thread variables."""
        if self._threadpoolctl is not None:
            libraries = [
                {
                    "library": entry.get("internal_api"),
                    "path": entry.get("filepath"),
                    "version": entry.get("version"),
                    "threading_layer": entry.get("threading_layer"),
                    "num_threads": entry.get("num_threads"),
                }
                for entry in self._threadpoolctl.threadpool_info()
                if entry.get("user_api") == "blas"
            ]
        else:
            libraries = [
                {
                    "library": "openblas",
                    "path": lib["path"],
                    "config": lib["config"],
                    "num_threads": int(lib["get"]()),
                }
                for lib in self._libs
            ]
        return {
            "method": self.method,
            "libraries": libraries,
            "env": {name: os.environ.get(name) for name in _THREAD_ENV},
            "cpu_count": os.cpu_count(),
        }

    @contextlib.contextmanager
    def limit(self, threads: int) -> Iterator[None]:
        """Within the block, numpy's and scipy's BLAS use ``threads`` threads."""
        if self._threadpoolctl is not None:
            with self._threadpoolctl.threadpool_limits(limits=threads, user_api="blas"):
                yield
            return
        before = [int(lib["get"]()) for lib in self._libs]
        for lib in self._libs:
            lib["set"](threads)
        try:
            yield
        finally:
            for lib, n in zip(self._libs, before):
                lib["set"](n)


def _busy_seconds() -> float | None:
    """CPU seconds of the whole machine (user, nice, system, irq, softirq, steal)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]
    return busy / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    times = os.times()
    return times.user + times.system


@contextlib.contextmanager
def background_load(record: dict[str, Any]) -> Iterator[None]:
    """Stores in ``record["background_cores"]`` the cores others used meanwhile.

    Machine-wide busy CPU time minus this process's, over the wall time of the
    block (Linux ``/proc/stat``; absent elsewhere). Near 0 on a quiet machine.
    """
    busy, own, start = _busy_seconds(), _own_seconds(), time.perf_counter()
    yield
    end_busy = _busy_seconds()
    wall = time.perf_counter() - start
    if busy is not None and end_busy is not None and wall > 0:
        others = (end_busy - busy) - (_own_seconds() - own)
        record["background_cores"] = round(max(0.0, others / wall), 3)


def timed(
    kind: str,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    *,
    repeats: int,
    warmup: int,
    check: Callable[[Any], None] | None = None,
) -> tuple[dict[str, Any], Any]:
    """Times ``fn`` (``kind`` "jax" or "python") under :func:`background_load`.

    Returns:
      The timing record (with ``background_cores``) and the first output.
    """
    outputs: list[Any] = []

    def keep(out: Any) -> None:
        if check is not None:
            check(out)
        outputs.append(out)

    timer = timing.time_jax if kind == "jax" else timing.time_python
    load: dict[str, Any] = {}
    with background_load(load):
        result = timer(fn, args, repeats=repeats, warmup=warmup, check=keep)
    return {**result.to_json(), **load}, outputs[0]


def print_record(
    name: str, record: dict[str, Any], accuracy: str = "max rel err", width: int = 24
) -> None:
    """One line: the median, compile time, accuracy value and background load."""
    if "error" in record:
        print(f"    {name:{width}s} FAILED: {record['error']}", flush=True)
        return
    acc = record.get("accuracy")
    acc_text = f"  {accuracy} {acc['value']:.3g}" if acc else ""
    busy = record.get("background_cores")
    busy_text = f"  (others used {busy:.2f} cores)" if busy is not None else ""
    print(
        f"    {name:{width}s} median {record['median_s'] * 1e3:10.3f} ms"
        f"  compile {record['compile_s']:6.2f} s{acc_text}{busy_text}",
        flush=True,
    )


def blas_note(blas_info: dict[str, Any], timed: str) -> str:
    """The results note on BLAS threads; ``timed`` names what ran with them (a subject)."""
    threads = ", ".join(
        f"{lib.get('library')} {lib.get('num_threads')} threads "
        f"({os.path.basename(lib.get('path') or '')})"
        for lib in blas_info["libraries"]
    )
    set_env = {key: v for key, v in blas_info["env"].items() if v is not None}
    return (
        f"BLAS threads at start ({blas_info['method']}): "
        f"{threads or 'no BLAS library found'}; thread variables set: "
        f"{set_env or 'none'}. {timed} timed with these threads and with 1 "
        "thread; ratios are given against each, best_anchor_ratio against "
        "the faster. XLA (jaxsampling) uses its own thread pool on all "
        f"{os.cpu_count()} cores."
    )


def load_notes(cases: list[dict[str, Any]]) -> list[str]:
    """The results note on the largest background load of any timed row (none if unmeasured)."""
    loads = [
        rec["background_cores"]
        for case in cases
        for rec in case["implementations"].values()
        if "background_cores" in rec
    ]
    if not loads:
        return []
    return [
        "Other processes used on average at most "
        f"{max(loads):.2f} of the {os.cpu_count()} cores while an implementation "
        "was timed (background_cores per implementation, from /proc/stat)."
    ]
