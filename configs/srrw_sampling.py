r"""Self-repellent random walks: n Var of the running average against alpha, with theory.

Karate club (34 nodes), an 8 x 8 grid and a Barabasi-Albert graph (200 nodes,
m = 3); Metropolis-Hastings base chain toward the uniform law; f = degree.
For alpha in {0, 1, 2, 5, 10, 20}: 1000 independent chains of 20,000 steps of
the SRRW (Doshi et al. 2023) and of the history-driven-target walk; reported:
n Var(f^T x_n) every 1000 steps, bias, n MSE, the theory f^T V(alpha) f and the
ratios to alpha = 0 (karate club theory: 0.250 / 0.064 / 0.033 at alpha =
1 / 5 / 10).

Run:

  python -m jaxsampling.main --config=configs/srrw_sampling.py --workdir=runs/srrw_sampling

Shrink it from the command line, for example:

  python -m jaxsampling.main --config=configs/srrw_sampling.py --config.graphs="('karate',)" \
      --config.num_chains=200 --config.num_steps=5000 --workdir=runs/srrw_small

Plot: python -m jaxsampling.plot --workdir=runs/srrw_sampling
"""

import ml_collections


def get_config(arg=None):
    """Returns the SRRW sampling-variance experiment config (``arg`` is unused)."""
    del arg
    config = ml_collections.ConfigDict()
    config.experiment = "srrw_sampling"

    # One block per (graph, method, alpha); ratios are to the alpha = 0 block.
    config.graphs = ("karate", "grid", "barabasi_albert")
    config.methods = ("srrw", "hdt")  # hdt: the O(1)-step history-driven-target follow-up
    config.alphas = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0)
    config.base_chain = "metropolis_hastings"  # or "simple_random_walk" (mu ~ degree)
    config.grid_size = 8
    config.ba_nodes = 200
    config.ba_m = 3
    config.ba_seed = 0

    # Monte Carlo: independent chains per block, steps per chain, record cadence.
    config.num_chains = 1000
    config.num_steps = 20_000
    config.record_every = 1000
    config.seed = 0

    config.log_every_blocks = 1
    config.log_every_secs = 10.0
    return config
