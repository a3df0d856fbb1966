"""NTK permutation ensembles: closed-form kernels, infinite and finite ensembles.

``from jaxsampling.kernels import ntk`` reproduces and extends Giapitzakis, Back
de Luca & Fountoulakis (2025), "Exact learning of permutations for nonzero
binary inputs with logarithmic training size and quadratic ensemble
complexity" (arXiv 2502.16763): two-layer ReLU networks trained by gradient
descent on only the ``k`` basis vectors ``e_i -> e_pi(i)``, whose ensemble
average, rounded, recovers ``pi`` on all ``2^k - 1`` nonzero binary inputs.

================  ==========================================================
module            what it holds
================  ==========================================================
``closed_form``   NNGP and NTK of a bias-free two-layer network (relu, erf;
                  NTK or standard parameterisation) for any inputs
``permutation``   the task: inputs, targets, the ``2k - 1`` distinct kernel
                  values and the posterior per Hamming weight in ``O(k)``
``infinite``      infinite-ensemble mean and (co)variance at time ``t`` for
                  any data, by dense linear algebra
``rounding``      the paper's sign rule, the Hamming-threshold and top-h rules
``complexity``    recovery probabilities of ``M`` averaged models; the
                  smallest ``M`` for a target probability
``empirical``     the empirical NTK of any flax model (VJP + JVP)
``ensemble``      finite ensembles: ``M`` networks trained in one scan
                  (sharded on the ensemble axis), streamed over all inputs
================  ==========================================================

Example (k = 16: the whole infinite-width answer in ``O(k)``):
  >>> from jaxsampling.kernels import ntk
  >>> post = ntk.permutation_posterior(16)
  >>> float(ntk.expected_fraction(post, 64, "top_h")) > 0.999
  True

The library users would otherwise reach for, neural-tangents, is archived and
does not import on current JAX; ``benchmarks/ntk.py`` runs it in its own
environment for comparison.
"""

from jaxsampling.kernels.ntk import (
    closed_form,
    complexity,
    empirical,
    ensemble,
    infinite,
    permutation,
    rounding,
)
from jaxsampling.kernels.ntk.closed_form import (
    ACTIVATIONS,
    PARAMETERIZATIONS,
    Kernels,
    from_inner_products,
    two_layer,
)
from jaxsampling.kernels.ntk.complexity import (
    AllInputs,
    all_inputs_probability,
    critical_ensemble_sizes,
    expected_fraction,
    failure_probability,
    min_ensemble_size,
)
from jaxsampling.kernels.ntk.empirical import empirical_ntk
from jaxsampling.kernels.ntk.ensemble import (
    ClassMoments,
    EnsembleStats,
    Trained,
    TwoLayer,
    class_moments,
    evaluate,
    train,
)
from jaxsampling.kernels.ntk.permutation import (
    HammingKernels,
    HammingPosterior,
    all_inputs,
    binary_inputs,
    expand,
    hamming_kernels,
    permutation_posterior,
    select_by_bit,
    targets,
    training_set,
)
from jaxsampling.kernels.ntk.infinite import Prediction, gradient_descent_mse, predict
from jaxsampling.kernels.ntk.rounding import PAPER_RULE, RULES, midpoint_thresholds, round_outputs

__all__ = [
    "ACTIVATIONS",
    "all_inputs",
    "all_inputs_probability",
    "AllInputs",
    "binary_inputs",
    "class_moments",
    "ClassMoments",
    "critical_ensemble_sizes",
    "closed_form",
    "complexity",
    "empirical",
    "empirical_ntk",
    "ensemble",
    "EnsembleStats",
    "evaluate",
    "expand",
    "expected_fraction",
    "failure_probability",
    "from_inner_products",
    "gradient_descent_mse",
    "hamming_kernels",
    "HammingKernels",
    "HammingPosterior",
    "infinite",
    "Kernels",
    "midpoint_thresholds",
    "min_ensemble_size",
    "PAPER_RULE",
    "PARAMETERIZATIONS",
    "permutation",
    "permutation_posterior",
    "predict",
    "Prediction",
    "round_outputs",
    "rounding",
    "RULES",
    "select_by_bit",
    "targets",
    "train",
    "Trained",
    "training_set",
    "two_layer",
    "TwoLayer",
]
