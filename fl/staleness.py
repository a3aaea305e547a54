"""Staleness weights s(tau) for asynchronous aggregation (papers/async_baselines.md, section 2).

All equal 1 at zero staleness and decrease with it; ``tau`` is the number of global-model
versions published since the update's base version.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Staleness:
    """``kind``: "constant" (1), "polynomial" ((tau + 1)^-a) or "hinge" (1 up to b, then
    1 / (a (tau - b) + 1))."""

    kind: str = "constant"
    a: float = 0.5
    b: float = 4.0

    def __call__(self, tau: int) -> float:
        if tau < 0:
            raise ValueError(f"staleness must be >= 0, got {tau}")
        if self.kind == "constant":
            return 1.0
        if self.kind == "polynomial":
            return float((tau + 1.0) ** (-self.a))
        if self.kind == "hinge":
            return 1.0 if tau <= self.b else 1.0 / (self.a * (tau - self.b) + 1.0)
        raise ValueError(f"unknown staleness function {self.kind!r}")


# The widely used default (notes, section 2): polynomial with a = 0.5. Frozen, so shareable.
POLYNOMIAL_HALF = Staleness("polynomial", a=0.5)
