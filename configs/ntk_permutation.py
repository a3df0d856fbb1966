r"""NTK permutation ensembles: recovery of all 2^k - 1 inputs against the ensemble size M.

For k in {8, 12, 16}: a pool of 4096 two-layer ReLU networks of width 512 (NTK
parameterisation, no biases), each trained by gradient descent on the k basis
vectors only (Giapitzakis et al. 2025), split into disjoint groups of M for M in
{1, 4, 16, 32, 64, 256, 1024, 2048}; per rounding rule (sign: the paper's;
threshold at the midpoint of the two class means of the input's Hamming weight;
top-h), the fraction of inputs recovered and the probability that every input is,
against the closed-form Gaussian-process predictions, and the closed form's
smallest M for probability 0.99 (k = 12, inputs independent: 1241 sign, 26
threshold, 13 top-h; by the joint law of all inputs, about 1210, 21 and 11).

Run (k = 16 streams 65,535 inputs through 4096 networks: several minutes):

  python -m jaxsampling.main --config=configs/ntk_permutation.py --workdir=runs/ntk_permutation

Shrink it from the command line, for example:

  python -m jaxsampling.main --config=configs/ntk_permutation.py --config.ks="(8,)" \
      --config.pool_size=512 --config.ensemble_sizes="(1, 4, 16, 64)" --workdir=runs/ntk_small

Plot: python -m jaxsampling.plot --workdir=runs/ntk_permutation
"""

import ml_collections


def get_config(arg=None):
    """Returns the NTK permutation experiment config (``arg`` is unused)."""
    del arg
    config = ml_collections.ConfigDict()
    config.experiment = "ntk_permutation"

    # One block per k: a fixed permutation drawn from (seed, k).
    config.ks = (8, 12, 16)
    # The pool of trained networks, split into pool_size // M groups per size M.
    config.pool_size = 4096
    config.ensemble_sizes = (1, 4, 16, 32, 64, 256, 1024, 2048)
    config.width = 512
    # Gradient descent with learning rate k for steps_per_bit * k steps: the slowest
    # mode of the training NTK decays like exp(-0.84 * steps / k), past float32.
    config.steps_per_bit = 40
    # Training (jaxsampling.train.loop): the pool sharded over every device of
    # every process; calls_per_block compiled calls per k, a checkpoint after each.
    config.calls_per_block = 4
    config.stop_after_steps = ml_collections.FieldReference(None, field_type=int)
    # Draws of the joint Gaussian-process law of all inputs (the predicted probability
    # of recovering every input), for k <= gp_max_k (one eigh of a 2^k-square matrix).
    config.gp_samples = 2048
    config.gp_max_k = 12
    config.seed = 0

    config.log_every_blocks = 1
    config.log_every_secs = 10.0
    return config
