"""The street every toy scene stands on: sky, facades, pavement, road, kerbs
and lane markings, and the ground geometry (horizon, vanishing point, road
edges, perspective depth) that places the objects.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from .canvas import Canvas, random_colour
from .classes import BUILDING, ROAD, SIDEWALK, SKY


@dataclass
class Street:
    """Ground geometry: horizon, vanishing point, road edges."""
    size: int
    horizon: float
    vanish_x: float
    top_half_width: float
    bottom_left: float
    bottom_right: float
    cross: Optional[Tuple[float, float]]  # depth band (t0, t1) or None

    def depth(self, y):
        """0 on the horizon, 1 on the bottom row (scales with 1 / distance)."""
        return (y - self.horizon) / (self.size - self.horizon)

    def row_of(self, t: float) -> float:
        return self.horizon + t * (self.size - self.horizon)

    def road_edges(self, y):
        t = self.depth(y)
        left = (self.vanish_x - self.top_half_width + t *
                (self.bottom_left - self.vanish_x + self.top_half_width))
        right = (self.vanish_x + self.top_half_width + t *
                 (self.bottom_right - self.vanish_x - self.top_half_width))
        return left, right


def draw_street(c: Canvas) -> Street:
    rng, s = c.rng, c.size
    street = Street(
        size=s,
        horizon=s * rng.uniform(0.3, 0.5),
        vanish_x=s * rng.uniform(0.25, 0.75),
        top_half_width=s * rng.uniform(0.0, 0.04),
        bottom_left=s * rng.uniform(-0.5, 0.25),
        bottom_right=s * rng.uniform(0.75, 1.5),
        cross=None)
    if rng.random() < 0.35:
        t0 = rng.uniform(0.12, 0.45)
        street.cross = (t0, t0 + rng.uniform(0.12, 0.25))
    below = c.y > street.horizon
    t = street.depth(c.y)

    # Sky: a vertical gradient between two colours.
    top, bottom = random_colour(rng), random_colour(rng)
    mix = np.clip(c.y / street.horizon, 0, 1)[..., None]
    c.paint(np.ones_like(below), (1 - mix) * top + mix * bottom, SKY)

    # Facades standing on the horizon, with windows or stripes.
    x = s * rng.uniform(-0.2, 0.1)
    while x < s:
        width = s * rng.uniform(0.12, 0.4)
        if rng.random() < 0.8:
            height = street.horizon * rng.uniform(0.3, 1.0)
            facade = c.rect(x, street.horizon - height, x + width,
                            street.horizon + 1)
            wall, other = random_colour(rng), random_colour(rng)
            if rng.random() < 0.5:
                c.paint(facade, c.pattern(wall, other), BUILDING)
            else:
                c.paint(facade, wall, BUILDING, noise=0.03)
                px, py = s * rng.uniform(0.04, 0.09), s * rng.uniform(
                    0.05, 0.1)
                fill = rng.uniform(0.35, 0.7)
                windows = facade & (((c.x - x) % px) < fill * px) & (
                    ((c.y - street.horizon) % py) < fill * py)
                c.paint(windows, other, BUILDING, noise=0.02)
        x += width

    # Pavement below the horizon, then the road on top of it.
    pave, other = random_colour(rng), random_colour(rng)
    pavement = c.pattern(pave, other)
    c.paint(below, pavement, SIDEWALK)
    left, right = street.road_edges(c.y)
    main = below & (c.x >= left) & (c.x < right)
    road = main.copy()
    if street.cross is not None:
        road |= below & (t >= street.cross[0]) & (t < street.cross[1])
    asphalt = random_colour(rng, sat=(0.0, 0.5), val=(0.1, 0.7))
    surface = rng.random()
    if surface < 0.35:
        # The very texture of the pavement: only the kerbs, the markings and
        # the street's geometry tell road from sidewalk (context, not colour).
        c.paint(road, pavement, ROAD)
    elif surface < 0.55:
        texture = c.pattern(asphalt, random_colour(rng, sat=(0, 0.4)))
        c.paint(road, texture, ROAD)
    else:
        c.paint(road, asphalt, ROAD, noise=rng.uniform(0.02, 0.07))

    # Kerbs along the main road: thin, light, part of the sidewalk.
    kerb_w = np.maximum(0.8, 0.03 * s * t)
    kerb = below & ~road & (((c.x >= left - kerb_w) & (c.x < left)) |
                            ((c.x >= right) & (c.x < right + kerb_w)))
    c.paint(kerb, random_colour(rng, sat=(0, 0.3), val=(0.5, 1.0)), SIDEWALK)

    # Lane markings: road class, a light colour, dashed in depth.
    paint_colour = random_colour(rng, sat=(0, 0.6), val=(0.6, 1.0))
    mid = 0.5 * (left + right)
    line_w = np.maximum(0.7, 0.025 * s * t)
    dash_scale = rng.uniform(1.0, 2.5)
    dashes = ((dash_scale / np.maximum(t, 1e-3)) % 1.0) < 0.5
    marks = main & (np.abs(c.x - mid) < line_w / 2) & dashes
    if rng.random() < 0.5:  # solid edge lines
        inset = rng.uniform(0.04, 0.1) * (right - left)
        marks |= main & ((np.abs(c.x - (left + inset)) < line_w / 2) |
                         (np.abs(c.x - (right - inset)) < line_w / 2))
    if rng.random() < 0.3:  # zebra crossing
        t0 = rng.uniform(0.35, 0.85)
        stripe = 0.07 * s * t
        band = (t >= t0) & (t < t0 + 0.1)
        marks |= main & band & (((c.x - mid) % np.maximum(stripe, 1)) <
                                0.5 * np.maximum(stripe, 1))
    c.paint(marks, paint_colour, ROAD, noise=0.03)
    return street
