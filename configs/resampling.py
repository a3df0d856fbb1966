r"""Resampling schemes inside a bootstrap particle filter (linear-Gaussian model).

Compares the log-likelihood error of six resampling schemes, each at N = 1000
and 10000 particles, resampling at every step or adaptively (ESS < 0.5 N),
against the exact Kalman-filter value; 100 independent filters per cell.

Run:

  python -m jaxsampling.main --config=configs/resampling.py --workdir=runs/resampling

Shrink it from the command line, for example:

  python -m jaxsampling.main --config=configs/resampling.py \
      --config.num_particles="(100, 1000)" --config.num_seeds=16 --workdir=runs/rs_small

Plot: python -m jaxsampling.plot --workdir=runs/resampling
"""

import ml_collections


def get_config(arg=None):
    """Returns the resampling experiment config (``arg`` is unused)."""
    del arg
    config = ml_collections.ConfigDict()
    config.experiment = "resampling"

    # Model: x_0 ~ N(0, sigma_x^2/(1-rho^2)), x_t = rho x_{t-1} + sigma_x eps_t,
    # y_t = x_t + sigma_y eta_t, t = 1..T; data simulated from data_seed.
    config.rho = 0.9
    config.sigma_x = 1.0
    config.sigma_y = 1.0
    config.T = 100
    config.data_seed = 0

    # Grid: every scheme x every N x every mode.
    config.schemes = (
        "multinomial",
        "stratified",
        "systematic",
        "residual",
        "ssp",
        "killing",
    )
    config.num_particles = (1000, 10000)
    config.modes = ("always", "adaptive")
    config.ess_threshold = 0.5  # adaptive: resample when ESS < ess_threshold * N

    # Monte Carlo: independent filters per cell, vmapped in batches.
    config.num_seeds = 100
    config.seeds_per_batch = 0  # 0: all seeds in one vmap
    config.seed = 42

    config.log_every_blocks = 1
    config.log_every_secs = 10.0
    return config
