"""Leverage scores, Lewis weights, l_p sensitivities and row-sampling coresets.

``from jaxsampling.kernels import leverage`` turns a tall matrix ``A``
(``n x d``, ``n >> d``) into a small reweighted subset ``S A`` that preserves
``||A x||_p`` for all ``x`` (Woodruff & Yasuda 2023, Sharper bounds for l_p
sensitivity sampling):

===============  ==========================================================
module           what it computes
===============  ==========================================================
``scores``       exact leverage scores by Cholesky-QR (no Q formed, one
                 all-reduce when rows are sharded), refined or rank-revealing
                 for ill-conditioned ``A``; root-leverage scores
``sketch``       approximate leverage scores: sparse (OSNAP) / CountSketch /
                 SRHT embeddings + an orthogonal JL map
``lewis``        l_p Lewis weights: Cohen-Peng and damped fixed points
``sensitivity``  exact l_p sensitivities (small problems), Lewis-weight bounds
``sampling``     Bernoulli / with-replacement row sampling, coresets,
                 distortion of a coreset
``regression``   weighted l_p regression (closed form at p = 2, IRLS otherwise)
===============  ==========================================================

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jaxsampling.kernels import leverage
  >>> A = jax.random.t(jax.random.key(0), 1.5, (20_000, 4))
  >>> b = A @ jnp.ones(4) + jax.random.normal(jax.random.key(1), (20_000,))
  >>> cs = leverage.coreset(jax.random.key(2), A, b, m=500, p=2.0, method="leverage")
  >>> x, _ = leverage.lp_regression(cs.rows, cs.targets, p=2.0)
  >>> bool(jnp.allclose(x, 1.0, atol=0.1))
  True
"""

from jaxsampling.kernels.leverage import lewis, regression, sampling, scores, sensitivity, sketch
from jaxsampling.kernels.leverage.lewis import LEWIS_METHODS, LewisInfo, lewis_weights
from jaxsampling.kernels.leverage.regression import RegressionInfo, lp_objective, lp_regression
from jaxsampling.kernels.leverage.sampling import (
    SAMPLING_METHODS,
    Coreset,
    RowSample,
    coreset,
    default_capacity,
    inclusion_probabilities,
    lp_distortion,
    sample_rows,
    sampling_probabilities,
    subspace_distortion,
)
from jaxsampling.kernels.leverage.scores import (
    METHODS,
    gram_whitener,
    leverage_scores,
    root_leverage_scores,
)
from jaxsampling.kernels.leverage.sensitivity import (
    exact_sensitivities,
    sensitivity_upper_bounds,
)
from jaxsampling.kernels.leverage.sketch import (
    SKETCHES,
    approximate_leverage_scores,
    countsketch,
    gaussian_sketch,
    sparse_sketch,
    srht,
)

__all__ = [
    "LEWIS_METHODS",
    "METHODS",
    "SAMPLING_METHODS",
    "SKETCHES",
    "Coreset",
    "LewisInfo",
    "RegressionInfo",
    "RowSample",
    "approximate_leverage_scores",
    "coreset",
    "countsketch",
    "default_capacity",
    "exact_sensitivities",
    "gaussian_sketch",
    "gram_whitener",
    "inclusion_probabilities",
    "leverage_scores",
    "lewis",
    "lewis_weights",
    "lp_distortion",
    "lp_objective",
    "lp_regression",
    "regression",
    "root_leverage_scores",
    "sample_rows",
    "sampling",
    "sampling_probabilities",
    "scores",
    "sensitivity",
    "sensitivity_upper_bounds",
    "sketch",
    "sparse_sketch",
    "srht",
    "subspace_distortion",
]
