"""Shared helpers for the tests."""

import numpy as np


def identical(a, b) -> bool:
    """Bit-for-bit equality (array_equal would call -0.0 and 0.0 equal)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def same_result(r, base) -> bool:
    """Loss and every parameter gradient of ``r`` bit-identical to ``base``'s."""
    return identical(r.loss, base.loss) and all(
        identical(g, h) for g, h in zip(r.grads, base.grads, strict=True)
    )


# Hypothesis profiles: the default run makes 500 examples per property test; the thorough
# profile (pytest --hypothesis-profile=thorough) makes 5000. No deadline: machines are shared.
try:
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "default", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    settings.register_profile(
        "thorough", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    settings.load_profile("default")
except ImportError:  # hypothesis comes with the test extra
    pass
