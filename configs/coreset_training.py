r"""Coreset training: logistic and l_1 regression on importance-sampled rows vs the full data.

Synthetic heavy-tailed data (Student-t(2) features, 50,000 rows, 10 columns
with an intercept); logistic regression (L2 1e-4) and least absolute
deviations. Coresets of m = 100 .. 3200 rows drawn with replacement from
uniform, root-leverage, l_1 Lewis and leverage probabilities (each mixed
half-and-half with uniform), 8 coresets per (method, m); each trained by the
shared loop (Adam, linear decay from 0.05, 2000 full-batch steps) and scored
by its relative loss gap on the full data against the float64 optimum.

Run:

  python -m jaxsampling.main --config=configs/coreset_training.py --workdir=runs/coreset_training

Plot: python -m jaxsampling.plot --workdir=runs/coreset_training
"""

import ml_collections


def get_config(arg=None):
    """Returns the coreset-training config (``arg`` is unused)."""
    del arg
    config = ml_collections.ConfigDict()
    config.experiment = "coreset_training"
    config.seed = 0
    config.data_seed = 0
    config.problems = ("logistic", "l1")
    config.methods = ("uniform", "root_leverage", "lewis", "leverage")
    config.num_rows = 50_000
    config.num_cols = 10
    config.l2 = 1e-4
    config.sizes = (100, 200, 400, 800, 1600, 3200)
    config.num_seeds = 8
    config.uniform_mix = 0.5
    config.stop_after_steps = ml_collections.FieldReference(None, field_type=int)

    config.train = ml_collections.ConfigDict()
    config.train.num_steps = 2000
    config.train.steps_per_call = 500
    config.train.checkpoint_every = 1000
    config.train.eval_every = 500
    config.train.keep_checkpoints = 2
    config.train.log_every_secs = 10.0
    config.train.optimizer = ml_collections.ConfigDict()
    config.train.optimizer.name = "adam"
    config.train.optimizer.kwargs = ml_collections.ConfigDict()
    config.train.optimizer.clip_norm = ml_collections.FieldReference(None, field_type=float)
    config.train.optimizer.schedule = ml_collections.ConfigDict(
        {"kind": "linear", "peak_value": 0.05, "warmup_steps": 0}
    )
    return config
