r"""Feynman-Kac correctors: annealing p^10 of a 4-mode mixture, product of two experts.

Annealing: p = sum_k w_k N(mu_k, 0.4^2 I), mu_k = (+-1.5, +-1.5),
w proportional to (1.0, 0.93, 0.87, 0.80), target p^beta with beta = 10 (exact by
grid quadrature), sampled with the tempered-noise SDE (drift s, noise variance
1/beta; annealing_noise="target_score" for drift beta s). Product of experts: two 2-mode experts that share one mode
(exact: mixtures.product). Each with FK weights (resampling every step, or the
killing scheme) and without (corrected=False, biased); 512 particles, 500 noise
levels geometric from 5.0 to 0.01, initial draws N(0, 3^2 I); 32 runs per cell.

Run:

  python -m jaxsampling.main --config=configs/fkc_annealing.py --workdir=runs/fkc

Shrink it from the command line, for example:

  python -m jaxsampling.main --config=configs/fkc_annealing.py \
      --config.num_steps=200 --config.num_seeds=8 --workdir=runs/fkc_small

Plot: python -m jaxsampling.plot --workdir=runs/fkc
"""

import ml_collections


def get_config(arg=None):
    """Returns the FKC experiment config (``arg`` is unused)."""
    del arg
    config = ml_collections.ConfigDict()
    config.experiment = "fkc_annealing"

    # Grid: every task x every variant.
    config.tasks = ("annealing", "product")
    config.variants = ("fkc", "fkc_killing", "uncorrected")

    # Sampler: Euler-Maruyama on sigma_max -> sigma_min (geometric), N particles.
    config.num_particles = 512
    config.num_steps = 500
    config.sigma_max = 5.0
    config.sigma_min = 0.01
    config.init_sd = 3.0
    config.scheme = "systematic"  # "fkc" resamples with it at every step

    # Annealing task: target (p * N(0, sigma_min^2))^beta.
    config.mode_weights = (1.0, 0.93, 0.87, 0.80)  # normalised by the experiment
    config.mode_means = ((-1.5, -1.5), (-1.5, 1.5), (1.5, -1.5), (1.5, 1.5))
    config.mode_sd = 0.4
    config.beta = 10.0
    # "tempered": drift s, noise Delta / beta (finite-variance weights at beta = 10);
    # "target_score": drift beta s, unit noise (weights of infinite variance).
    config.annealing_noise = "tempered"

    # Product task: two experts; the product's components heavier than
    # min_mode_weight are its modes.
    config.first_weights = (0.2, 0.8)
    config.first_means = ((-1.5, -1.5), (1.5, 1.5))
    config.first_sd = 0.8
    config.second_weights = (0.2, 0.8)
    config.second_means = ((-1.5, -1.5), (1.5, -1.5))
    config.second_sd = 0.8
    config.min_mode_weight = 0.01

    # Exact statistics by quadrature on a grid_size^2 grid over [-w, w]^2.
    config.grid_half_width = 4.0
    config.grid_size = 801

    # Monte Carlo: independent runs per cell.
    config.num_seeds = 32
    config.seeds_per_batch = 1  # 1: one run at a time (lax.map); 0: one vmap
    config.seed = 0

    # particles.npz: the target densities on a coarser grid over [-w, w]^2.
    config.plot_half_width = 3.5
    config.plot_grid_size = 121

    config.log_every_blocks = 1
    config.log_every_secs = 10.0
    return config
