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
