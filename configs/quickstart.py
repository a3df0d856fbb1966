r"""Quick start: a shrunk run of every experiment, with a summary table at the end.

Runs each sub-config of ``config.experiments`` into ``<workdir>/<name>`` and
prints a plain-text results table and the wall time. Takes well under two
minutes on two CPU cores, compilation included.

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

    config = ml_collections.ConfigDict()
    config.experiment = "quickstart"
    config.experiments = ml_collections.ConfigDict({"resampling": resampling})
    return config
