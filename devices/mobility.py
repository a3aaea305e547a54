"""Device mobility: positions that move in virtual time inside the placement area.

The simulator advances every device at once at each update instant (the fading coherence
block, so a block sees one set of positions) and recomputes path loss from the new distances;
each device keeps its own shadowing offset (shadowing is keyed by device, not by place).

* ``constant_velocity``: a speed (m/s) and a heading per device, reflected at the area's edge;
* ``random_waypoint``: walk at a speed drawn for each leg towards a waypoint drawn uniformly in
  the area, then draw the next one (the rest of an update step after arriving is not used).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Area:
    """A disc of ``radius_m`` or a square of ``side_m`` centred on the server."""

    radius_m: float | None = None
    side_m: float | None = None

    def contain(self, position: np.ndarray, velocity: np.ndarray | None = None) -> None:
        """Reflect positions [n, 2] (and velocities) that left the area back into it."""
        if self.side_m is not None:
            half = self.side_m / 2.0
            for axis in (0, 1):
                over, under = position[:, axis] > half, position[:, axis] < -half
                position[over, axis] = 2 * half - position[over, axis]
                position[under, axis] = -2 * half - position[under, axis]
                if velocity is not None:
                    velocity[over | under, axis] *= -1.0
            return
        assert self.radius_m is not None
        r = np.hypot(position[:, 0], position[:, 1])
        out = r > self.radius_m
        if out.any():
            unit = position[out] / r[out, None]
            position[out] = unit * (2 * self.radius_m - r[out])[:, None]
            if velocity is not None:  # mirror the velocity in the tangent line
                v = velocity[out]
                velocity[out] = v - 2 * (v * unit).sum(axis=1)[:, None] * unit

    def uniform(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.side_m is not None:
            return rng.uniform(-self.side_m / 2, self.side_m / 2, size=(n, 2))
        assert self.radius_m is not None
        r = self.radius_m * np.sqrt(rng.random(n))
        theta = rng.uniform(0, 2 * np.pi, n)
        return np.column_stack([r * np.cos(theta), r * np.sin(theta)])


@dataclass
class ConstantVelocity:
    """Every device moves at its own constant velocity [n, 2] m/s, reflected at the edge."""

    area: Area
    velocity_mps: np.ndarray

    def advance(self, position: np.ndarray, dt_s: float) -> np.ndarray:
        new = position + self.velocity_mps * dt_s
        self.area.contain(new, self.velocity_mps)
        return new


@dataclass
class RandomWaypoint:
    """Walk towards a uniform waypoint at a speed drawn per leg from [low, high] m/s."""

    area: Area
    speed_range_mps: tuple[float, float]
    rng: np.random.Generator
    waypoint: np.ndarray = field(init=False)
    speed_mps: np.ndarray = field(init=False)

    def start(self, n: int) -> None:
        self.waypoint = self.area.uniform(n, self.rng)
        self.speed_mps = self.rng.uniform(*self.speed_range_mps, size=n)

    def advance(self, position: np.ndarray, dt_s: float) -> np.ndarray:
        to_go = self.waypoint - position
        remaining = np.hypot(to_go[:, 0], to_go[:, 1])
        step = self.speed_mps * dt_s
        arrived = step >= remaining
        with np.errstate(invalid="ignore", divide="ignore"):
            moved = position + to_go * np.where(arrived, 1.0, step / remaining)[:, None]
        if arrived.any():  # next leg: a new waypoint and a new speed
            k = int(arrived.sum())
            self.waypoint[arrived] = self.area.uniform(k, self.rng)
            self.speed_mps[arrived] = self.rng.uniform(*self.speed_range_mps, size=k)
        return moved
