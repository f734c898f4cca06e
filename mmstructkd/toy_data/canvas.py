"""The painter of the toy scenes: picture, class map and instance map drawn
together, so that the picture and its labels never disagree.

Shapes are boolean masks over pixel centres; :meth:`Canvas.paint` sets the
colour, the class and the instance of a mask at once. :func:`random_colour`
draws from the broad colour ranges that every class shares.
"""
from __future__ import annotations

import colorsys
from typing import List, Optional, Sequence, Tuple

import numpy as np


class Canvas:
    """Image, class map and instance map painted together, far to near."""

    def __init__(self,
                 size: int,
                 rng: np.random.Generator,
                 object_scale: float = 1.0) -> None:
        self.size = size
        self.rng = rng
        # Multiplies the size of everything standing on the street (see
        # objects.depth_size).
        self.object_scale = object_scale
        centres = np.arange(size, dtype=np.float64) + 0.5
        # Shapes are tested at pixel centres, so a shape covers exactly the
        # pixels whose label it sets: image and labels never disagree.
        self.y, self.x = np.meshgrid(centres, centres, indexing='ij')
        self.image = np.zeros((size, size, 3))
        self.label = np.zeros((size, size), np.uint8)
        self.instance_ids = np.zeros((size, size), np.int32)
        self.instance_classes: List[int] = []

    def new_instance(self, class_id: int) -> int:
        self.instance_classes.append(class_id)
        return len(self.instance_classes)

    def paint(self,
              mask: np.ndarray,
              colour,
              class_id: int,
              instance_id: int = 0,
              noise: float = 0.03,
              shading: float = 0.1) -> None:
        """Paint ``mask`` with a colour (shaded, noisy) or a full texture."""
        if not mask.any():
            return
        texture = np.asarray(colour, dtype=np.float64)
        if texture.ndim == 1:
            self.image[mask] = self.flat(texture, noise, shading, mask)
        else:
            self.image[mask] = texture[mask]
        self.label[mask] = class_id
        self.instance_ids[mask] = instance_id

    def shade(self, mask: np.ndarray, factor: float) -> None:
        """Darken the picture only (shadows): labels stay."""
        self.image[mask] *= factor

    def flat(self,
             colour: np.ndarray,
             noise: float,
             shading: float,
             mask: Optional[np.ndarray] = None) -> np.ndarray:
        """A colour with a linear light gradient and luminance noise, over the
        whole canvas ``(H, W, 3)`` or over ``mask``'s pixels ``(N, 3)`` (noise
        drawn for those pixels only keeps generation fast)."""
        x, y = (self.x, self.y) if mask is None else (self.x[mask],
                                                      self.y[mask])
        angle = self.rng.uniform(0, 2 * np.pi)
        ramp = (np.cos(angle) * x + np.sin(angle) * y) / self.size
        ramp = ramp - ramp.mean()
        lum = shading * ramp + noise * self.rng.standard_normal(x.shape)
        return colour + lum[..., None]

    def pattern(self, colour: np.ndarray, second: np.ndarray) -> np.ndarray:
        """A random background texture: noise, gradient or stripes."""
        rng, s = self.rng, self.size
        kind = rng.integers(0, 6)
        period = s * rng.uniform(0.04, 0.14)
        if kind == 0:  # plain, grainy
            return self.flat(colour, rng.uniform(0.02, 0.08), 0.1)
        if kind == 1:  # strong gradient between the two colours
            angle = rng.uniform(0, 2 * np.pi)
            ramp = (np.cos(angle) * self.x + np.sin(angle) * self.y) / s
            ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-6)
            mix = ramp[..., None]
        elif kind in (2, 3):  # horizontal or vertical stripes
            coord = self.y if kind == 2 else self.x
            duty = rng.uniform(0.2, 0.6)
            phase = rng.uniform(0, period)
            mix = (((coord + phase) % period) < duty * period)[..., None]
        elif kind == 4:  # diagonal stripes
            angle = rng.uniform(0, np.pi)
            coord = np.cos(angle) * self.x + np.sin(angle) * self.y
            mix = ((coord % period) < 0.5 * period)[..., None]
        else:  # checker
            mix = (((self.x // period) + (self.y // period)) % 2)[..., None]
        texture = (1 - mix) * colour + mix * second
        grain = self.rng.standard_normal((s, s, 1))
        return texture + rng.uniform(0.01, 0.05) * grain

    # Shapes: boolean masks over pixel centres.
    def rect(self, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        return ((self.x >= x0) & (self.x < x1) & (self.y >= y0) &
                (self.y < y1))

    def ellipse(self, cx: float, cy: float, rx: float,
                ry: float) -> np.ndarray:
        rx, ry = max(rx, 1e-3), max(ry, 1e-3)
        return ((self.x - cx) / rx)**2 + ((self.y - cy) / ry)**2 <= 1.0

    def polygon(self, points: Sequence[Tuple[float, float]]) -> np.ndarray:
        """Convex polygon, vertices in either orientation."""
        left = np.ones_like(self.x, dtype=bool)
        right = np.ones_like(self.x, dtype=bool)
        for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1]):
            cross = (x1 - x0) * (self.y - y0) - (y1 - y0) * (self.x - x0)
            left &= cross >= 0
            right &= cross <= 0
        return left | right

    def segment(self, x0: float, y0: float, x1: float, y1: float,
                width: float) -> np.ndarray:
        """Capsule of ``width`` around a segment (limbs, crown branches)."""
        dx, dy = x1 - x0, y1 - y0
        length2 = max(dx * dx + dy * dy, 1e-9)
        along = np.clip(((self.x - x0) * dx + (self.y - y0) * dy) / length2,
                        0.0, 1.0)
        dist2 = (self.x - x0 - along * dx)**2 + (self.y - y0 - along * dy)**2
        return dist2 <= (width / 2)**2


def random_colour(rng: np.random.Generator,
                  hue: Optional[Tuple[float, float]] = None,
                  sat: Tuple[float, float] = (0.0, 0.85),
                  val: Tuple[float, float] = (0.15, 0.95)) -> np.ndarray:
    """An RGB colour in [0, 1]; every class shares these broad ranges."""
    h = rng.uniform(*hue) % 1.0 if hue is not None else rng.random()
    return np.array(
        colorsys.hsv_to_rgb(h, rng.uniform(*sat), rng.uniform(*val)))
