"""Test setup: 8 simulated CPU devices, configured before any JAX backend starts."""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import gc  # noqa: E402

import jax  # noqa: E402  (must follow the XLA_FLAGS update)
import pytest  # noqa: E402


def pytest_configure(config):
    del config
    if jax.device_count() != 8:
        raise RuntimeError(
            f"tests need 8 CPU devices, got {jax.device_count()}: was a JAX backend "
            "started before tests/conftest.py?"
        )


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drops JAX's compiled programs after each test module.

    Every XLA:CPU executable holds about 3 memory mappings; the whole suite compiles
    enough programs to reach the kernel's ``vm.max_map_count`` (65530), where the next
    compilation segfaults. The caches are cleared once the process holds more than
    30,000 mappings (clearing after every module would recompile shared programs).
    """
    yield
    try:
        with open("/proc/self/maps") as maps:
            count = sum(1 for _ in maps)
    except OSError:
        count = _MAX_MAPPINGS
    if count >= _MAX_MAPPINGS:
        jax.clear_caches()
        gc.collect()


_MAX_MAPPINGS = 30_000


@pytest.fixture
def key():
    return jax.random.key(0)
