r"""SA-SRRW: distributed logistic regression by a self-repellent token, against alpha.

Each of the 34 karate-club nodes holds 20 samples of a 5-feature logistic
regression (node-dependent feature means; L2 1e-2); a token moved by the SRRW
over the Metropolis-Hastings base chain (uniform target) updates theta with
SGD on the loss of the node it reaches (Hu, Doshi & Eun, ICLR 2024). For
alpha in {0, 1, 5, 10} and the three step-size regimes (beta = o(gamma),
beta = gamma, gamma = o(beta); gamma_n ~ n^-a, beta_n ~ n^-b with (a, b) =
(0.6, 0.9), (0.8, 0.8), (0.9, 0.6)): 400 runs of 20,000 steps; reported: MSE,
squared bias and variance of theta_n against theta* over time, and their
ratios to alpha = 0.

Run:

  python -m jaxsampling.main --config=configs/srrw_token.py --workdir=runs/srrw_token

Plot: python -m jaxsampling.plot --workdir=runs/srrw_token
"""

import ml_collections


def get_config(arg=None):
    """Returns the SA-SRRW token experiment config (``arg`` is unused)."""
    del arg
    config = ml_collections.ConfigDict()
    config.experiment = "srrw_token"

    # One block per (regime, alpha); ratios are to alpha = 0 of the same regime.
    config.regimes = ("beta_slower", "equal", "gamma_slower")
    config.alphas = (0.0, 1.0, 5.0, 10.0)
    config.gamma_scale = 1.0  # gamma_{n+1} = gamma_scale (n + 2)^-a
    config.beta_scale = 1.0  # beta_{n+1} = beta_scale (n + 2)^-b

    # The graph and the data shards (synthetic, generated from data_seed).
    config.graph = "karate"  # or "barabasi_albert"
    config.ba_nodes = 100
    config.ba_m = 3
    config.ba_seed = 0
    config.num_features = 5
    config.samples_per_node = 20
    config.heterogeneity = 1.0  # spread of the node-dependent feature means
    config.l2 = 1e-2
    config.data_seed = 0

    # Monte Carlo: independent runs per block, steps per run, record cadence.
    config.num_runs = 400
    config.num_steps = 20_000
    config.record_every = 1000
    config.seed = 0

    # Training (jaxsampling.train.loop): the theta update, one compiled call
    # per record, a checkpoint every few records within a block.
    config.optimizer = "sgd"  # any optax optimiser taking learning_rate = beta
    config.checkpoint_every_records = 5
    config.stop_after_steps = ml_collections.FieldReference(None, field_type=int)

    config.log_every_blocks = 1
    config.log_every_secs = 10.0
    return config
