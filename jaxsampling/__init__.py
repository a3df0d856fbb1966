"""jaxsampling: jitted, vmapped, sharded sampling kernels in JAX.

Public subpackages:

* :mod:`jaxsampling.kernels`: pure sampling kernels, one module per family.
* :mod:`jaxsampling.train`: trainers that compose kernels with optax.
* :mod:`jaxsampling.testing`: statistical assertions for testing samplers.
"""

__version__ = "0.1.0"
