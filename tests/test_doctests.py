"""Every docstring example in the public modules runs and prints what it says."""

import doctest
import importlib

import pytest

MODULES = [
    "jaxsampling.kernels.resampling",
    "jaxsampling.sharding",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0, f"{result.failed} failing examples in {name}"
