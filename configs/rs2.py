r"""RS2 (repeated random subsets) against static subsets and the full data, on digits.

A flax MLP (64 -> 128 -> 10) on scikit-learn's digits (1438 training, 359 test
images), trained by the shared loop (SGD with momentum 0.9, linear decay from
0.05, batch 32). Every subset arm sees 256 examples per epoch for 40 epochs:
RS2 a fresh subset each epoch (without replacement across epochs), the
static arms one subset chosen up front (uniform, k-means diversity with 2
rounds of cluster re-weighting, leverage-score sensitivity, k-DPP); the full
arm every image for 10 epochs. Extra RS2 arms compare the constant, cosine
and refined (Defazio et al., from the linear run's gradient norms) schedules.
Reported: test accuracy against time and examples, and each arm's time to
reach 90% and 95% test accuracy relative to RS2's (selection time included,
compilation reported apart).

Run:

  python -m jaxsampling.main --config=configs/rs2.py --workdir=runs/rs2

Plot: python -m jaxsampling.plot --workdir=runs/rs2
"""

import ml_collections


def train_config():
    """The shared loop's settings (steps and evaluation cadence are set per arm)."""
    train = ml_collections.ConfigDict()
    train.optimizer = ml_collections.ConfigDict()
    train.optimizer.name = "sgd"
    train.optimizer.kwargs = ml_collections.ConfigDict({"momentum": 0.9})
    train.optimizer.clip_norm = ml_collections.FieldReference(None, field_type=float)
    train.optimizer.schedule = ml_collections.ConfigDict(
        {"kind": "linear", "peak_value": 0.05, "warmup_steps": 0, "tau": 0.1, "power": 2}
    )
    train.log_every_secs = 10.0
    train.keep_checkpoints = 2
    return train


def get_config(arg=None):
    """Returns the RS2 experiment config (``arg`` is unused)."""
    del arg
    config = ml_collections.ConfigDict()
    config.experiment = "rs2"
    config.seed = 0
    config.dataset = "digits"
    config.hidden = (128,)
    config.arms = ("rs2", "uniform", "kmeans", "leverage", "dpp", "full")
    config.schedules = ("constant", "cosine", "refined")
    config.subset_size = 256
    config.batch_size = 32
    config.epochs = 40
    config.full_epochs = 10
    config.num_clusters = 20
    config.refine_rounds = 2
    config.eval_every_epochs = 1
    config.checkpoint_every_evals = 5
    config.target_accuracies = (0.9, 0.95)
    config.stop_after_epochs = ml_collections.FieldReference(None, field_type=int)
    config.train = train_config()
    return config
