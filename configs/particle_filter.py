r"""Bootstrap vs guided (optimal-proposal) particle filters against the Kalman filter.

Log-likelihood error (RMSE, bias, natural-scale ratio) and filtering-mean error
as functions of the number of particles, N = 100, 1000, 10000, on the 1-D
linear-Gaussian model; 100 independent filters per cell.

Run:

  python -m jaxsampling.main --config=configs/particle_filter.py \
      --workdir=runs/particle_filter

Shrink it from the command line, for example:

  python -m jaxsampling.main --config=configs/particle_filter.py \
      --config.num_particles="(100, 1000)" --config.num_seeds=16 --workdir=runs/pf_small

Plot: python -m jaxsampling.plot --workdir=runs/particle_filter
"""

import ml_collections


def get_config(arg=None):
    """Returns the particle-filter experiment config (``arg`` is unused)."""
    del arg
    config = ml_collections.ConfigDict()
    config.experiment = "particle_filter"

    # Model: x_1 ~ N(0, sigma_x^2/(1-rho^2)), x_t = rho x_{t-1} + sigma_x eps_t,
    # y_t = x_t + sigma_y eta_t, t = 1..T; data simulated from data_seed.
    config.rho = 0.9
    config.sigma_x = 1.0
    config.sigma_y = 1.0
    config.T = 100
    config.data_seed = 0

    # Grid: every filter x every N.
    config.filters = ("bootstrap", "guided")
    config.num_particles = (100, 1000, 10000)
    config.scheme = "systematic"
    config.ess_threshold = 0.5  # resample when ESS < ess_threshold * N

    # Monte Carlo: independent filters per cell, vmapped in batches.
    config.num_seeds = 100
    config.seeds_per_batch = 0  # 0: all seeds in one vmap
    config.seed = 42

    config.log_every_blocks = 1
    config.log_every_secs = 10.0
    return config
