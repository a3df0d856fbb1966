r"""Runs a jaxsampling experiment from an ml_collections config file.

This file is intentionally kept short (flax examples/mnist/main.py pattern):
the logic lives in ``jaxsampling.train.<experiment>.train_and_evaluate``,
which is a tested library function.

Run:

  python -m jaxsampling.main --config=configs/resampling.py --workdir=runs/resampling

Quick start (every experiment shrunk, a summary table at the end):

  python -m jaxsampling.main --config=configs/quickstart.py --workdir=runs/quickstart

Config fields can be overridden, e.g. ``--config.num_seeds=16`` or
``--config.experiments.resampling.num_seeds=4``.

Several hosts (``--multihost``): every process runs the same command with
its ``--process_id`` (or ``JAX_PROCESS_ID``), the same
``--coordinator_address`` (``JAX_COORDINATOR_ADDRESS``, host:port of process
0) and ``--num_processes`` (``JAX_NUM_PROCESSES``), and a workdir on a shared
file system; ``jax.distributed.initialize`` joins them into one runtime whose
global mesh spans every process's devices. On CPU the collectives use gloo.
With no address and count given, JAX's cluster auto-detection (SLURM, TPU
pods, Kubernetes, ...) fills them in. Two processes on one machine::

  for i in 0 1; do
    python -m jaxsampling.main --multihost --coordinator_address=localhost:12355 \
      --num_processes=2 --process_id=$i --config=configs/rs2.py --workdir=runs/rs2 &
  done; wait
"""

import time

_START = time.perf_counter()

import os  # noqa: E402

import jax  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from jaxsampling import metrics, tour, train  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment configuration file.", lock_config=True
)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Directory for metrics, checkpoints, summary."
)

_MULTIHOST = flags.DEFINE_bool(
    "multihost", False, "Join a multi-process run with jax.distributed.initialize."
)
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address",
    os.environ.get("JAX_COORDINATOR_ADDRESS"),
    "host:port of process 0 (default: $JAX_COORDINATOR_ADDRESS or auto-detected).",
)
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes",
    int(os.environ["JAX_NUM_PROCESSES"]) if "JAX_NUM_PROCESSES" in os.environ else None,
    "Number of processes (default: $JAX_NUM_PROCESSES or auto-detected).",
)
_PROCESS_ID = flags.DEFINE_integer(
    "process_id",
    int(os.environ["JAX_PROCESS_ID"]) if "JAX_PROCESS_ID" in os.environ else None,
    "This process's index (default: $JAX_PROCESS_ID or auto-detected).",
)

_TABLE_COLUMNS = {
    "resampling": (
        "scheme",
        "num_particles",
        "mode",
        "rmse",
        "bias",
        "std",
        "mean_resampling_steps",
    ),
    "particle_filter": (
        "filter",
        "num_particles",
        "rmse",
        "bias",
        "mean_ratio",
        "filter_mean_rmse",
        "mean_resampling_steps",
    ),
    "smc_mixture": (
        "variant",
        "logz_rmse",
        "logz_bias",
        "mode_weight_tv",
        "mean_error",
        "num_steps",
        "acceptance",
        "proposals_per_particle",
    ),
    "fkc_annealing": (
        "task",
        "variant",
        "mode_weight_tv",
        "mode_weight_bias_tv",
        "mean_error",
        "second_moment_error",
        "spread_rel_error",
        "ess_log_loss",
    ),
    "lp_coreset": (
        "p",
        "method",
        "m",
        "distortion",
        "distortion_search",
        "regression_error",
        "sample_size",
    ),
    "dpp_wls": (
        "function",
        "m",
        "method",
        "n",
        "mean_ratio",
        "median_ratio",
        "q90_ratio",
        "well_conditioned",
    ),
    "srrw_sampling": (
        "graph",
        "method",
        "alpha",
        "n_var",
        "theory",
        "ratio",
        "theory_ratio",
        "bias",
    ),
    "ntk_permutation": (
        "k",
        "rule",
        "M",
        "fraction",
        "predicted_fraction",
        "all_recovered",
        "predicted_all",
        "predicted_m99",
    ),
    "rs2": (
        "arm",
        "final_accuracy",
        "selection_time",
        "train_time",
        "examples_to_90",
        "time_ratio_90",
        "examples_to_95",
        "time_ratio_95",
    ),
    "coreset_training": ("problem", "method", "m", "gap_mean", "gap_se", "gap_median"),
    "srrw_token": (
        "regime",
        "alpha",
        "mse",
        "bias_sq",
        "variance",
        "variance_ratio",
        "mse_over_variance",
    ),
}


def summary_table(name: str, summary: dict) -> str:
    """Formats one experiment's summary as a plain-text block with an aligned table."""
    header = f"== {name} =="
    if "loglik_exact" in summary:
        header += f"  (exact log-likelihood {summary['loglik_exact']:.4f})"
    rows = summary.get("results")
    if not isinstance(rows, list):
        return header + "\n" + str(summary)
    return header + "\n" + metrics.format_table(rows, _TABLE_COLUMNS.get(name))


def run_quickstart(config, workdir: str, times: dict | None = None) -> dict:
    """Runs every sub-config of ``config.experiments`` into ``workdir/<name>``.

    If ``times`` is a dict, it receives each experiment's wall time in seconds.
    """
    summaries = {}
    for name, sub_config in config.experiments.items():
        logging.info("quickstart: running %s", name)
        start = time.perf_counter()
        summaries[name] = train.get(sub_config.experiment)(
            sub_config, os.path.join(workdir, name)
        )
        elapsed = time.perf_counter() - start
        logging.info("quickstart: %s took %.1f s", name, elapsed)
        if times is not None:
            times[name] = elapsed
    return summaries


def initialize_distributed(
    coordinator_address: str | None, num_processes: int | None, process_id: int | None
) -> None:
    """``jax.distributed.initialize``; CPU devices (if used) talk through gloo."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError("Too many command-line arguments.")
    if _MULTIHOST.value:
        initialize_distributed(
            _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value
        )
    logging.info("JAX process: %d / %d", jax.process_index(), jax.process_count())
    logging.info("JAX local devices: %r", jax.local_devices())
    config = _CONFIG.value
    workdir = _WORKDIR.value
    if config.experiment == "quickstart":
        times = {}
        summaries = run_quickstart(config, workdir, times)
        for name, summary in summaries.items():
            print(summary_table(name, summary), end="\n\n")
        print("== tour: headline per experiment ==")
        print(metrics.format_table(tour.headlines(summaries)), end="\n\n")
        each = ", ".join(f"{name} {t:.1f} s" for name, t in times.items())
        print(f"quickstart wall time: {time.perf_counter() - _START:.1f} s ({each})")
    else:
        train.get(config.experiment)(config, workdir)


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main)
