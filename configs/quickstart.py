r"""Quick start: a shrunk run of every experiment, with a summary table at the end.

Runs each sub-config of ``config.experiments`` into ``<workdir>/<name>``,
prints a plain-text results table per experiment, the tour (one headline
figure per experiment, its expected value and whether the run matches it;
:mod:`jaxsampling.tour`) and the wall times. Takes about 3.5 minutes on two
CPU cores (eleven experiments, 10-30 s each), compilation (one XLA program
per block, a few seconds each) included.

Run:

  python -m jaxsampling.main --config=configs/quickstart.py --workdir=runs/quickstart

Override a sub-config from the command line, for example:

  python -m jaxsampling.main --config=configs/quickstart.py \
      --config.experiments.resampling.num_seeds=4 --workdir=runs/qs_tiny

Plot: python -m jaxsampling.plot --workdir=runs/quickstart
"""

import importlib.util
import os

import ml_collections


def _load_sibling(name):
    """Imports ``configs/<name>.py`` by path (configs/ is not a package)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"_jaxsampling_configs_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def get_config(arg=None):
    """Returns the quickstart config (``arg`` is unused)."""
    del arg
    resampling = _load_sibling("resampling").get_config()
    resampling.num_particles = (1000,)
    resampling.num_seeds = 32

    # Compilation dominates each experiment's time (a few seconds per block on
    # two cores), so the shrunk grids keep few blocks.
    particle_filter = _load_sibling("particle_filter").get_config()
    particle_filter.num_particles = (100, 1000)
    particle_filter.num_seeds = 16
    particle_filter.T = 50

    smc_mixture = _load_sibling("smc_mixture").get_config()
    smc_mixture.variants = ("random_walk", "waste_free")
    smc_mixture.num_particles = 500
    smc_mixture.num_seeds = 4
    smc_mixture.plot_grid_size = 81

    fkc_annealing = _load_sibling("fkc_annealing").get_config()
    fkc_annealing.variants = ("fkc", "uncorrected")
    fkc_annealing.num_steps = 200
    fkc_annealing.num_seeds = 4
    fkc_annealing.grid_size = 401
    fkc_annealing.plot_grid_size = 81

    # Heavy-tailed 20,000 x 10 matrix; p = 1 (a lower bound) and 2 (exact).
    lp_coreset = _load_sibling("lp_coreset").get_config()
    lp_coreset.num_rows = 20_000
    lp_coreset.num_cols = 10
    lp_coreset.p_values = (1.0, 2.0)
    lp_coreset.methods = ("uniform", "leverage", "lewis")
    lp_coreset.cross_cells = ()
    lp_coreset.sizes = (200, 1000)
    lp_coreset.num_seeds = 4
    lp_coreset.num_random_directions = 32
    lp_coreset.num_row_directions = 16
    lp_coreset.num_sampled_directions = 8

    # Weighted least squares in the Legendre space of dimension 10: n = m,
    # 2m, 4m for the four designs, both test functions, one block.
    dpp_wls = _load_sibling("dpp_wls").get_config()
    dpp_wls.dims = (10,)
    dpp_wls.sample_ratios = (1, 2, 4)
    dpp_wls.num_seeds = 200
    dpp_wls.seeds_per_batch = 0

    # Self-repellent walks on the karate club: n Var against alpha = 0, 1, 5 for
    # the SRRW and the history-driven-target walk (two programs to compile).
    srrw_sampling = _load_sibling("srrw_sampling").get_config()
    srrw_sampling.graphs = ("karate",)
    srrw_sampling.alphas = (0.0, 1.0, 5.0)
    srrw_sampling.num_chains = 200
    srrw_sampling.num_steps = 4000
    srrw_sampling.record_every = 500

    # SA-SRRW logistic regression on the karate club: the three step-size
    # regimes at alpha = 0 and 5 (one program per regime).
    srrw_token = _load_sibling("srrw_token").get_config()
    srrw_token.alphas = (0.0, 5.0)
    srrw_token.num_runs = 64
    srrw_token.num_steps = 4000
    srrw_token.record_every = 500

    # NTK permutation ensembles at k = 8: 256 networks of width 256 (one program),
    # groups of 1, 4, 16 and 64, against the closed-form predictions.
    ntk_permutation = _load_sibling("ntk_permutation").get_config()
    ntk_permutation.ks = (8,)
    ntk_permutation.pool_size = 256
    ntk_permutation.ensemble_sizes = (1, 4, 16, 64)
    ntk_permutation.width = 256

    # RS2 on digits: 128 examples per epoch for 20 epochs; every static selector,
    # the full data for 4 epochs, and the cosine and refined schedules.
    rs2 = _load_sibling("rs2").get_config()
    rs2.hidden = (64,)
    rs2.subset_size = 128
    rs2.epochs = 20
    rs2.full_epochs = 4
    rs2.schedules = ("cosine", "refined")
    rs2.checkpoint_every_evals = 10

    # Coreset training on 5,000 heavy-tailed rows: uniform and Lewis coresets
    # of 100 and 1000 rows, 4 each, 400 full-batch Adam steps.
    coreset_training = _load_sibling("coreset_training").get_config()
    coreset_training.num_rows = 5000
    coreset_training.sizes = (100, 1000)
    coreset_training.num_seeds = 4
    coreset_training.methods = ("uniform", "lewis")
    coreset_training.train.num_steps = 400
    coreset_training.train.steps_per_call = 200
    coreset_training.train.eval_every = 200
    coreset_training.train.checkpoint_every = 400

    config = ml_collections.ConfigDict()
    config.experiment = "quickstart"
    config.experiments = ml_collections.ConfigDict(
        {
            "resampling": resampling,
            "particle_filter": particle_filter,
            "smc_mixture": smc_mixture,
            "fkc_annealing": fkc_annealing,
            "lp_coreset": lp_coreset,
            "dpp_wls": dpp_wls,
            "srrw_sampling": srrw_sampling,
            "srrw_token": srrw_token,
            "ntk_permutation": ntk_permutation,
            "rs2": rs2,
            "coreset_training": coreset_training,
        }
    )
    return config
