r"""Weighted least squares on [-1, 1]: i.i.d. optimal vs DPP vs volume-rescaled designs.

Polynomials of degree < m (orthonormal Legendre basis, uniform measure),
m in {10, 20, 40}; n = r m evaluations, r in {1, 2, 3, 4, 6, 8}, of
1 / (1 + 25 x^2) (smooth) and |x| (a kink), fitted by weighted least squares
(weights m / k_m) on four designs: n i.i.d. points from the optimal density
k_m / m, the projection DPP (n = m), volume-rescaled sampling (the DPP plus
n - m i.i.d. points) and r independent DPPs. 1000 designs per cell; reported:
the mean / median / quantiles of ||f - f_hat||^2 / e_m(f)^2 (e_m the
best-approximation error) and the fraction of designs with ||G - I||_2 <= 1/2.
Nouy & Michel (2023), arXiv:2312.14057.

Run:

  python -m jaxsampling.main --config=configs/dpp_wls.py --workdir=runs/dpp_wls

Shrink it from the command line, for example:

  python -m jaxsampling.main --config=configs/dpp_wls.py --config.dims="(10,)" \
      --config.sample_ratios="(1, 2, 4)" --config.num_seeds=200 \
      --workdir=runs/dpp_wls_small

Plot: python -m jaxsampling.plot --workdir=runs/dpp_wls
"""

import ml_collections


def get_config(arg=None):
    """Returns the DPP weighted least-squares experiment config (``arg`` is unused)."""
    del arg
    config = ml_collections.ConfigDict()
    config.experiment = "dpp_wls"

    # One block per dimension m of the polynomial space.
    config.dims = (10, 20, 40)
    config.functions = ("runge", "abs")  # also available: "step" (a jump at 0.3)
    config.methods = ("iid", "dpp", "volume_rescaled", "repeated_dpp")
    # n = r m; dpp at r = 1 only, repeated_dpp at r >= 2.
    config.sample_ratios = (1, 2, 3, 4, 6, 8)
    config.well_conditioned_delta = 0.5  # ||G - I||_2 <= delta
    config.quadrature_nodes = 400  # per piece of the composite Gauss rule (e_m, c*)
    config.float64 = True  # draws and fits in float64 (interpolation: ill conditioned)

    # Monte Carlo: designs per cell, drawn and fitted seeds_per_batch at a time.
    config.num_seeds = 1000
    config.seeds_per_batch = 250  # 0: all seeds at once
    config.seed = 0

    config.log_every_blocks = 1
    config.log_every_secs = 10.0
    return config
