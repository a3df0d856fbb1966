"""Closed-form NNGP and NTK of a bias-free two-layer network.

The network (``W1: [width, d]``, ``W2: [outputs, width]``, entries ``N(0, 1)``):

.. math::

   f(x) = \\frac{1}{\\sqrt{m}} W_2\\, \\phi\\Big(\\frac{1}{\\sqrt{d}} W_1 x\\Big)
   \\quad\\text{(NTK parameterisation)}, \\qquad
   f(x) = W_2 \\phi(W_1 x),\\ W_1 \\sim N(0, 1/d),\\ W_2 \\sim N(0, 1/m)
   \\quad\\text{(standard)}.

With the first-layer covariance ``Sigma(x, x') = x . x' / d`` (the same in both)
and ``(u, v)`` centred Gaussian with that covariance,

.. math::

   K(x, x') = E[\\phi(u) \\phi(v)], \\qquad
   \\dot K(x, x') = E[\\phi'(u) \\phi'(v)],

   \\Theta_{ntk} = K + \\Sigma\\, \\dot K, \\qquad
   \\Theta_{std} = m K + (x . x')\\, \\dot K.

Each output is an independent Gaussian process with these kernels (the
kernels of the ``outputs`` axis are ``K I`` and ``Theta I``). The
standard-parameterisation NTK grows with the width ``m`` (gradient descent
needs a learning rate ``O(1/m)`` there), so it takes ``width``.

Activations, with ``rho = Sigma_12 / sqrt(Sigma_11 Sigma_22) = cos(theta)``:

* ``relu``: ``K = sqrt(S11 S22) (sin theta + (pi - theta) cos theta) / (2 pi)``,
  ``Kdot = (pi - theta) / (2 pi)`` (Cho & Saul, 2009);
* ``erf``: ``K = (2 / pi) arcsin(2 S12 / sqrt((1 + 2 S11)(1 + 2 S22)))``,
  ``Kdot = (4 / pi) / sqrt((1 + 2 S11)(1 + 2 S22) - 4 S12^2)`` (Williams, 1997).

Example:
  >>> import jax.numpy as jnp
  >>> from jaxsampling.kernels import ntk
  >>> e = jnp.eye(4)
  >>> kernels = ntk.two_layer(e, e)
  >>> [round(float(4 * kernels.ntk[i, j]), 4) for i, j in [(0, 0), (0, 1)]]  # 1 and 1/(2 pi)
  [1.0, 0.1592]
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from jaxsampling.types import Array, ArrayLike

#: Activations with a closed form.
ACTIVATIONS = ("relu", "erf")
#: Parameterisations: ``"ntk"`` (the paper's) and ``"standard"`` (needs ``width``).
PARAMETERIZATIONS = ("ntk", "standard")


class Kernels(NamedTuple):
    """The two kernels of a network at the same pairs of inputs.

    Attributes:
        nngp: ``K``: the covariance of the outputs at initialisation.
        ntk: ``Theta``: the neural tangent kernel.
    """

    nngp: Array
    ntk: Array


def check_options(activation: str, parameterization: str, width: int | None) -> None:
    """``ValueError`` for an unknown activation or parameterisation, or a bad width."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(
            f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}"
        )
    if parameterization == "standard":
        if width is None or isinstance(width, bool) or int(width) != width or width < 1:
            raise ValueError(
                "width must be an int >= 1 with parameterization='standard' (its NTK grows "
                f"with the width), got {width!r}"
            )


def _relu(s11: Array, s22: Array, s12: Array) -> tuple[Array, Array]:
    norms = jnp.sqrt(s11 * s22)
    safe = jnp.where(norms > 0, norms, 1.0)
    cos = jnp.clip(s12 / safe, -1.0, 1.0)
    theta = jnp.arccos(cos)
    sin = jnp.sqrt(jnp.maximum(1.0 - cos * cos, 0.0))
    nngp = norms * (sin + (jnp.pi - theta) * cos) / (2 * jnp.pi)
    # A zero input has u = 0: phi'(0) = 0 (the relu's derivative at 0 is taken as 0).
    dot = jnp.where(norms > 0, (jnp.pi - theta) / (2 * jnp.pi), 0.0)
    return nngp, dot


def _erf(s11: Array, s22: Array, s12: Array) -> tuple[Array, Array]:
    a = (1 + 2 * s11) * (1 + 2 * s22)
    nngp = (2 / jnp.pi) * jnp.arcsin(jnp.clip(2 * s12 / jnp.sqrt(a), -1.0, 1.0))
    dot = (4 / jnp.pi) / jnp.sqrt(a - 4 * s12 * s12)
    return nngp, dot


def from_inner_products(
    q11: ArrayLike,
    q22: ArrayLike,
    q12: ArrayLike,
    input_dim: int,
    *,
    activation: str = "relu",
    parameterization: str = "ntk",
    width: int | None = None,
) -> Kernels:
    """The kernels from the inputs' inner products ``|x|^2``, ``|x'|^2``, ``x . x'``.

    Every pair of inputs with the same three inner products has the same
    kernel values: this is the form the binary closed forms use.

    Args:
        q11, q22, q12: Broadcastable arrays of ``x . x``, ``x' . x'``, ``x . x'``.
        input_dim: ``d``, the first layer's fan-in.
        activation: One of :data:`ACTIVATIONS`.
        parameterization: One of :data:`PARAMETERIZATIONS`.
        width: ``m``; needed only by the standard parameterisation.

    Returns:
        :class:`Kernels` broadcast to the inputs' common shape.
    """
    check_options(activation, parameterization, width)
    if isinstance(input_dim, bool) or int(input_dim) != input_dim or input_dim < 1:
        raise ValueError(f"input_dim must be an int >= 1, got {input_dim!r}")
    q11, q22, q12 = (jnp.asarray(q) for q in (q11, q22, q12))
    dtype = jnp.result_type(q11, q22, q12)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    q11, q22, q12 = (q.astype(dtype) for q in (q11, q22, q12))
    s11, s22, s12 = q11 / input_dim, q22 / input_dim, q12 / input_dim
    nngp, dot = (_relu if activation == "relu" else _erf)(s11, s22, s12)
    if parameterization == "ntk":
        return Kernels(nngp, nngp + s12 * dot)
    return Kernels(nngp, width * nngp + q12 * dot)


def two_layer(
    x1: ArrayLike,
    x2: ArrayLike | None = None,
    *,
    activation: str = "relu",
    parameterization: str = "ntk",
    width: int | None = None,
    diagonal: bool = False,
) -> Kernels:
    """NNGP and NTK between every row of ``x1`` and every row of ``x2``.

    Args:
        x1: ``[n1, d]`` inputs.
        x2: ``[n2, d]`` inputs; ``x1`` when omitted.
        activation, parameterization, width: As in :func:`from_inner_products`.
        diagonal: Only ``k(x1_i, x2_i)``, shape ``[n1]`` (``x2`` must match ``x1``'s
            shape); ``O(n d)`` instead of ``O(n1 n2 d)``.

    Returns:
        :class:`Kernels` of shape ``[n1, n2]`` (``[n1]`` when ``diagonal``).

    Raises:
        ValueError: ``x1`` / ``x2`` not 2-D arrays with the same number of columns
            (integer and bool inputs are cast to float), or a bad option.
    """
    same = x2 is None
    x1 = check_inputs(x1, "x1")
    x2 = x1 if same else check_inputs(x2, "x2")
    if x1.shape[1] != x2.shape[1]:
        raise ValueError(f"x1 and x2 need the same number of columns, got {x1.shape} and {x2.shape}")
    sq1 = jnp.sum(x1 * x1, axis=1)
    sq2 = jnp.sum(x2 * x2, axis=1)
    if diagonal:
        if x1.shape != x2.shape:
            raise ValueError(f"diagonal=True needs x1 and x2 of one shape, got {x1.shape}, {x2.shape}")
        q11, q22, q12 = sq1, sq2, jnp.sum(x1 * x2, axis=1)
    else:
        q12 = x1 @ x2.T
        if same:  # the norms from the Gram matrix itself: cos(theta) = 1 exactly on its diagonal
            sq1 = sq2 = jnp.diagonal(q12)
        q11, q22 = sq1[:, None], sq2[None, :]
    return from_inner_products(
        q11, q22, q12, x1.shape[1],
        activation=activation, parameterization=parameterization, width=width,
    )


def check_inputs(x: ArrayLike, name: str) -> Array:
    """``x`` as a 2-D float array (integer and bool inputs are cast), or ``ValueError``."""
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D [n, d] array, got shape {x.shape}")
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
        raise ValueError(f"{name} must be real, got {x.dtype}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return x
