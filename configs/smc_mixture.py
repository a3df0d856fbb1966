r"""Adaptive tempered SMC on a 2-D mixture of 4 separated, unequally weighted modes.

Prior N(0, 3^2 I); likelihood sum_k w_k N(mu_k, 0.4^2 I) with w = (0.1, 0.2,
0.3, 0.4) and mu_k = (+-2, +-2); the posterior and the evidence are exact
(mixtures.product). Compares random-walk, MALA and waste-free moves on the
log-evidence error, the mode-weight error, the number of tempering steps and the
acceptance rate; 32 independent runs of 2000 particles per variant.

Run:

  python -m jaxsampling.main --config=configs/smc_mixture.py --workdir=runs/smc_mixture

Shrink it from the command line, for example:

  python -m jaxsampling.main --config=configs/smc_mixture.py \
      --config.num_particles=500 --config.num_seeds=8 --workdir=runs/mix_small

Plot: python -m jaxsampling.plot --workdir=runs/smc_mixture
"""

import ml_collections


def get_config(arg=None):
    """Returns the tempered-SMC mixture experiment config (``arg`` is unused)."""
    del arg
    config = ml_collections.ConfigDict()
    config.experiment = "smc_mixture"

    # Problem: prior N(0, prior_sd^2 I); likelihood sum_k w_k N(mu_k, mode_sd^2 I).
    config.prior_sd = 3.0
    config.mode_weights = (0.1, 0.2, 0.3, 0.4)
    config.mode_means = ((-2.0, -2.0), (-2.0, 2.0), (2.0, -2.0), (2.0, 2.0))
    config.mode_sd = 0.4

    # Samplers: one block per variant ("random_walk", "mala", "waste_free").
    config.variants = ("random_walk", "mala", "waste_free")
    config.num_particles = 2000
    config.num_mcmc_steps = 10  # random_walk and mala: moves per tempering step
    config.chain_length = 10  # waste_free: P states per chain, N / P ancestors
    config.target_ess = 0.5  # conditional ESS fraction of each tempering step
    config.max_steps = 100
    config.scheme = "systematic"

    # Monte Carlo: independent runs per variant.
    config.num_seeds = 32
    config.seeds_per_batch = 1  # 1: one run at a time (lax.map); 0: one vmap
    config.seed = 0

    # particles.npz: the posterior density on a grid over [-w, w]^2.
    config.plot_half_width = 4.5
    config.plot_grid_size = 121

    config.log_every_blocks = 1
    config.log_every_secs = 10.0
    return config
