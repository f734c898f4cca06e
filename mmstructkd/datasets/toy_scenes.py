"""Toy street scenes: a small synthetic data set for CPU-sized experiments.

One scene model feeds two layouts, so segmentation and detection see the very
same pictures:

* mmseg's standard layout: ``img_dir/{split}/NAME.png`` (RGB) and
  ``ann_dir/{split}/NAME.png`` (uint8 class map, values ``0..4``);
* a COCO instance set: ``annotations/instances_{split}.json`` whose
  ``file_name`` is relative to ``img_dir/{split}/``; every thing instance
  carries its *visible* mask (after occlusion) as compressed RLE, and its box
  is the tight box of that mask.

Classes are told apart by shape and layout, never by colour alone: every
surface (sky, facades, pavement, road, car bodies, clothes, sign plates,
trees) draws its colour from broad, overlapping distributions. Layout:

* ``background`` (0): sky gradient, facades with window grids or stripes,
  pavement, kerbs, trees (trees stand in front of things and occlude them);
* ``road`` (1): a perspective trapezoid towards a vanishing point on the
  horizon, sometimes a cross street, with dashed lane lines and zebra stripes;
* ``car`` (2): side or rear view, body + cabin + windows + wheels;
* ``person`` (3): thin legs, torso, arms and head;
* ``sign`` (4): a pole one or two pixels wide with a round, square,
  triangular, diamond or wide plate.

Objects stand on the ground: their size follows the perspective depth of their
foot point, and they are painted far to near, so near objects occlude far
ones. Thin structures (poles, limbs) make the object boundaries the hard part.

Every image is drawn from its own random stream,
``numpy.random.default_rng([seed, split_code, index])``, so a given image does
not depend on how many others are generated, and the same arguments give
byte-identical files. :func:`generate_toy_scenes` writes a ``manifest.json``
with the parameters and file hashes last; a second call with the same
arguments finds it and does nothing.

Example:
    >>> from mmstructkd.datasets.toy_scenes import generate_toy_scenes
    >>> generate_toy_scenes('data/toy_scenes', num_train=8, num_val=4,
    ...                     size=64)  # doctest: +SKIP
    True
"""
from __future__ import annotations

import colorsys
import hashlib
import io
import json
import os
import os.path as osp
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmdet.datasets import CocoDataset
from mmseg.datasets import BaseSegDataset
from PIL import Image

from mmstructkd.registry import DATASETS
from .empty_dataset import NonEmptyDatasetMixin

# Bump whenever the drawing changes: the manifest then no longer matches and
# an existing data set is regenerated instead of silently kept.
GENERATOR_VERSION = 1

CLASSES = ('background', 'road', 'car', 'person', 'sign')
# Cityscapes' colours for the shared classes (road, car, person, traffic sign).
PALETTE = [[70, 70, 70], [128, 64, 128], [0, 0, 142], [220, 20, 60],
           [220, 220, 0]]
BACKGROUND, ROAD, CAR, PERSON, SIGN = range(len(CLASSES))
THING_CLASSES = ('car', 'person', 'sign')
THING_PALETTE = [PALETTE[CAR], PALETTE[PERSON], PALETTE[SIGN]]
# COCO category id (1..K) of each thing class id of the label maps.
COCO_CATEGORY_IDS = {CAR: 1, PERSON: 2, SIGN: 3}
COCO_SUPERCATEGORIES = {CAR: 'vehicle', PERSON: 'human', SIGN: 'object'}

SPLITS = ('train', 'val')
# Part of the per-image seed, so train and val images never coincide.
_SPLIT_CODES = {'train': 0, 'val': 1}
_HOLDOUT_STREAM = 7
# Instances whose visible part is smaller than this (in pixels) stay in the
# label maps but are left out of the COCO files: no detector can find them.
DEFAULT_MIN_VISIBLE_AREA = 8
MANIFEST_NAME = 'manifest.json'


def default_data_root() -> str:
    """``data/toy_scenes`` under the repository root (found from this file)."""
    repo_root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    return osp.join(repo_root, 'data', 'toy_scenes')


# ---------------------------------------------------------------------------
# Scene model
# ---------------------------------------------------------------------------
@dataclass
class Scene:
    """One rendered scene.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB picture.
        label: ``(H, W)`` uint8 class map, values index :data:`CLASSES`.
        instance_ids: ``(H, W)`` int32 map, ``k > 0`` where instance
            ``instances[k - 1]`` is visible, 0 elsewhere.
        instance_classes: class id (2, 3 or 4) of each visible instance.
    """
    image: np.ndarray
    label: np.ndarray
    instance_ids: np.ndarray
    instance_classes: List[int] = field(default_factory=list)

    def visible_masks(self) -> List[np.ndarray]:
        """``(H, W)`` bool mask of each instance's visible pixels."""
        return [
            self.instance_ids == k + 1
            for k in range(len(self.instance_classes))
        ]


class _Canvas:
    """Image, class map and instance map painted together, far to near."""

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.size = size
        self.rng = rng
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


def _colour(rng: np.random.Generator,
            hue: Optional[Tuple[float, float]] = None,
            sat: Tuple[float, float] = (0.0, 0.85),
            val: Tuple[float, float] = (0.15, 0.95)) -> np.ndarray:
    """An RGB colour in [0, 1]; every class shares these broad ranges."""
    h = rng.uniform(*hue) % 1.0 if hue is not None else rng.random()
    return np.array(
        colorsys.hsv_to_rgb(h, rng.uniform(*sat), rng.uniform(*val)))


@dataclass
class _Street:
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


def _draw_street(c: _Canvas) -> _Street:
    rng, s = c.rng, c.size
    street = _Street(
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
    top, bottom = _colour(rng), _colour(rng)
    mix = np.clip(c.y / street.horizon, 0, 1)[..., None]
    c.paint(np.ones_like(below), (1 - mix) * top + mix * bottom, BACKGROUND)

    # Facades standing on the horizon, with windows or stripes.
    x = s * rng.uniform(-0.2, 0.1)
    while x < s:
        width = s * rng.uniform(0.12, 0.4)
        if rng.random() < 0.8:
            height = street.horizon * rng.uniform(0.3, 1.0)
            facade = c.rect(x, street.horizon - height, x + width,
                            street.horizon + 1)
            wall, other = _colour(rng), _colour(rng)
            if rng.random() < 0.5:
                c.paint(facade, c.pattern(wall, other), BACKGROUND)
            else:
                c.paint(facade, wall, BACKGROUND, noise=0.03)
                px, py = s * rng.uniform(0.04, 0.09), s * rng.uniform(
                    0.05, 0.1)
                fill = rng.uniform(0.35, 0.7)
                windows = facade & (((c.x - x) % px) < fill * px) & (
                    ((c.y - street.horizon) % py) < fill * py)
                c.paint(windows, other, BACKGROUND, noise=0.02)
        x += width

    # Pavement below the horizon, then the road on top of it.
    pave, other = _colour(rng), _colour(rng)
    c.paint(below, c.pattern(pave, other), BACKGROUND)
    left, right = street.road_edges(c.y)
    main = below & (c.x >= left) & (c.x < right)
    road = main.copy()
    if street.cross is not None:
        road |= below & (t >= street.cross[0]) & (t < street.cross[1])
    asphalt = _colour(rng, sat=(0.0, 0.5), val=(0.1, 0.7))
    if rng.random() < 0.3:
        texture = c.pattern(asphalt, _colour(rng, sat=(0, 0.4)))
        c.paint(road, texture, ROAD)
    else:
        c.paint(road, asphalt, ROAD, noise=rng.uniform(0.02, 0.07))

    # Kerbs along the main road: thin, light, and background.
    kerb_w = np.maximum(0.8, 0.03 * s * t)
    kerb = below & ~road & (((c.x >= left - kerb_w) & (c.x < left)) |
                            ((c.x >= right) & (c.x < right + kerb_w)))
    c.paint(kerb, _colour(rng, sat=(0, 0.3), val=(0.5, 1.0)), BACKGROUND)

    # Lane markings: road class, a light colour, dashed in depth.
    paint_colour = _colour(rng, sat=(0, 0.6), val=(0.6, 1.0))
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


def _draw_car(c: _Canvas, gx: float, gy: float, t: float, side_view: bool,
              instance_id: int) -> None:
    rng = c.rng
    width = c.size * 0.42 * t * rng.uniform(0.75, 1.25)
    body_colour = _colour(rng)
    glass = _colour(rng, sat=(0, 0.6), val=(0.1, 0.7))
    tyre = _colour(rng, sat=(0, 0.3), val=(0.02, 0.3))
    c.shade(c.ellipse(gx, gy, 0.6 * width, 0.07 * width + 0.5), 0.6)
    if side_view:
        r = 0.12 * width
        x0, x1 = gx - width / 2, gx + width / 2
        body_bottom = gy - 0.5 * r
        body_top = body_bottom - width * rng.uniform(0.2, 0.3)
        cabin_h = width * rng.uniform(0.16, 0.26)
        front_first = rng.random() < 0.5
        a, b = (0.15, 0.3) if front_first else (0.3, 0.15)
        cabin = [(x0 + a * width, body_top + 0.5),
                 (x0 + (a + 0.12) * width, body_top - cabin_h),
                 (x1 - (b + 0.12) * width, body_top - cabin_h),
                 (x1 - b * width, body_top + 0.5)]
        c.paint(c.rect(x0, body_top, x1, body_bottom), body_colour, CAR,
                instance_id)
        c.paint(c.polygon(cabin), body_colour, CAR, instance_id)
        inset = 0.04 * width
        window = [(cabin[0][0] + 2 * inset, cabin[0][1] - inset),
                  (cabin[1][0] + inset, cabin[1][1] + inset),
                  (cabin[2][0] - inset, cabin[2][1] + inset),
                  (cabin[3][0] - 2 * inset, cabin[3][1] - inset)]
        pillar = c.rect(gx - 0.02 * width, body_top - cabin_h, gx + 0.02 *
                        width, body_top)
        c.paint(c.polygon(window) & ~pillar, glass, CAR, instance_id)
        for wx in (x0 + 0.22 * width, x1 - 0.22 * width):
            c.paint(c.ellipse(wx, gy - r, r, r), tyre, CAR, instance_id)
            c.paint(c.ellipse(wx, gy - r, 0.45 * r, 0.45 * r),
                    _colour(rng, sat=(0, 0.2), val=(0.4, 0.9)), CAR,
                    instance_id)
        lamp_x = x1 - 0.05 * width if front_first else x0
        c.paint(c.rect(lamp_x, body_top + 0.1 * width, lamp_x + 0.05 * width,
                       body_top + 0.16 * width), _colour(rng), CAR,
                instance_id)
    else:  # seen from behind: narrower, taller, wheels under the corners
        w = 0.6 * width
        x0, x1 = gx - w / 2, gx + w / 2
        body_bottom = gy - 0.1 * w
        body_top = body_bottom - w * rng.uniform(0.35, 0.5)
        cabin_h = w * rng.uniform(0.25, 0.38)
        for wx0 in (x0 + 0.04 * w, x1 - 0.22 * w):
            c.paint(c.rect(wx0, body_bottom - 0.05 * w, wx0 + 0.18 * w, gy),
                    tyre, CAR, instance_id)
        c.paint(c.rect(x0, body_top, x1, body_bottom), body_colour, CAR,
                instance_id)
        cabin = [(x0 + 0.05 * w, body_top + 0.5), (x0 + 0.18 * w,
                                                   body_top - cabin_h),
                 (x1 - 0.18 * w, body_top - cabin_h), (x1 - 0.05 * w,
                                                       body_top + 0.5)]
        c.paint(c.polygon(cabin), body_colour, CAR, instance_id)
        window = [(x0 + 0.14 * w, body_top), (x0 + 0.23 * w,
                                              body_top - 0.8 * cabin_h),
                  (x1 - 0.23 * w, body_top - 0.8 * cabin_h), (x1 - 0.14 * w,
                                                              body_top)]
        c.paint(c.polygon(window), glass, CAR, instance_id)
        lamp = _colour(rng, hue=(-0.05, 0.1), sat=(0.5, 1.0))
        lamp_y0 = body_top + 0.12 * w
        for lx in (x0 + 0.05 * w, x1 - 0.2 * w):
            c.paint(c.rect(lx, lamp_y0, lx + 0.15 * w, lamp_y0 + 0.1 * w),
                    lamp, CAR, instance_id)
        c.paint(c.rect(gx - 0.12 * w, body_bottom - 0.17 * w, gx + 0.12 * w,
                       body_bottom - 0.07 * w),
                _colour(rng, sat=(0, 0.2), val=(0.6, 1.0)), CAR, instance_id)


def _draw_person(c: _Canvas, gx: float, gy: float, t: float,
                 instance_id: int) -> None:
    rng = c.rng
    h = c.size * 0.32 * t * rng.uniform(0.8, 1.2)
    limb = max(0.8, 0.085 * h)
    trousers, shirt = _colour(rng), _colour(rng)
    skin = _colour(rng, hue=(0.02, 0.12), sat=(0.2, 0.7), val=(0.3, 0.95))
    stride = 0.12 * h * rng.uniform(-1, 1)
    hip_y, shoulder_y = gy - 0.47 * h, gy - 0.8 * h
    for side in (-1, 1):
        c.paint(
            c.segment(gx + side * 0.05 * h, hip_y, gx + side * stride,
                      gy - limb / 2, limb), trousers, PERSON, instance_id)
    torso = [(gx - 0.13 * h, shoulder_y), (gx + 0.13 * h, shoulder_y),
             (gx + 0.1 * h, hip_y + 0.03 * h), (gx - 0.1 * h,
                                                hip_y + 0.03 * h)]
    c.paint(c.polygon(torso), shirt, PERSON, instance_id)
    swing = 0.08 * h * rng.uniform(-1, 1)
    for side in (-1, 1):
        c.paint(
            c.segment(gx + side * 0.14 * h, shoulder_y + 0.02 * h,
                      gx + side * 0.17 * h + side * swing, gy - 0.48 * h,
                      0.8 * limb), shirt, PERSON, instance_id)
    head_r = 0.085 * h
    head_y = shoulder_y - 0.02 * h - head_r
    c.paint(c.ellipse(gx, head_y, head_r, 1.15 * head_r), skin, PERSON,
            instance_id)
    if rng.random() < 0.6:  # hair or a hat
        c.paint(
            c.ellipse(gx, head_y - 0.5 * head_r, 1.05 * head_r, 0.7 * head_r)
            & (c.y < head_y - 0.2 * head_r), _colour(rng), PERSON,
            instance_id)


def _draw_sign(c: _Canvas, gx: float, gy: float, t: float,
               instance_id: int) -> None:
    rng = c.rng
    pole_h = c.size * 0.5 * t * rng.uniform(0.8, 1.2)
    pole_w = max(1.0, 0.03 * pole_h)
    c.paint(
        c.rect(gx - pole_w / 2, gy - pole_h, gx + pole_w / 2, gy),
        _colour(rng, sat=(0, 0.4)), SIGN, instance_id)
    plates = 2 if rng.random() < 0.2 else 1
    d = pole_h * rng.uniform(0.24, 0.34)
    cy = gy - pole_h + 0.4 * d
    for _ in range(plates):
        rim, face = _colour(rng), _colour(rng)
        shape = rng.integers(0, 5)
        for scale, colour in ((1.0, rim), (0.72, face)):
            r = 0.5 * d * scale
            if shape == 0:
                mask = c.ellipse(gx, cy, r, r)
            elif shape == 1:
                mask = c.rect(gx - r, cy - r, gx + r, cy + r)
            elif shape == 2:
                flip = 1 if rng.random() < 0.5 else -1
                mask = c.polygon([(gx, cy - flip * r), (gx + 1.1 * r,
                                                        cy + flip * 0.8 * r),
                                  (gx - 1.1 * r, cy + flip * 0.8 * r)])
            elif shape == 3:
                mask = c.polygon([(gx, cy - 1.2 * r), (gx + 1.2 * r, cy),
                                  (gx, cy + 1.2 * r), (gx - 1.2 * r, cy)])
            else:  # a wide street-name plate
                mask = c.rect(gx - 1.6 * r, cy - 0.5 * r, gx + 1.6 * r,
                              cy + 0.5 * r)
            c.paint(mask, colour, SIGN, instance_id, noise=0.02)
        cy += 1.1 * d


def _draw_tree(c: _Canvas, gx: float, gy: float, t: float) -> None:
    """Background clutter in front of things: a trunk and a leafy crown."""
    rng = c.rng
    h = c.size * 0.6 * t * rng.uniform(0.8, 1.3)
    bark = _colour(rng, hue=(0.0, 0.15), sat=(0.2, 0.8), val=(0.1, 0.6))
    c.paint(c.rect(gx - 0.035 * h, gy - 0.6 * h, gx + 0.035 * h, gy), bark,
            BACKGROUND)
    leaves = _colour(rng, hue=(0.12, 0.45)) if rng.random() < 0.7 else \
        _colour(rng)
    crown = np.zeros_like(c.x, dtype=bool)
    for _ in range(rng.integers(3, 6)):
        r = h * rng.uniform(0.12, 0.22)
        crown |= c.ellipse(gx + h * rng.uniform(-0.15, 0.15),
                           gy - h * rng.uniform(0.65, 0.85), r,
                           r * rng.uniform(0.8, 1.2))
    c.paint(crown, c.pattern(leaves, _colour(rng, hue=(0.1, 0.5))),
            BACKGROUND)


def render_scene(size: int, rng: np.random.Generator) -> Scene:
    """Draw one street scene.

    Args:
        size: Side of the square picture in pixels (32 or more).
        rng: The random stream; the scene is a pure function of its state.

    Returns:
        Scene: picture, class map and visible instances.
    """
    if size < 32:
        raise ValueError(f'toy scenes need size >= 32 pixels, got {size}')
    c = _Canvas(size, rng)
    street = _draw_street(c)

    def ground_row(t_low: float, t_high: float) -> Tuple[float, float]:
        t = rng.uniform(t_low, t_high)
        return street.row_of(t), t

    # (foot row, order, kind, x, depth, extra): sorted far to near.
    objects = []
    for _ in range(rng.integers(0, 4)):
        gy, t = ground_row(0.25, 1.1)
        on_cross = street.cross is not None and rng.random() < 0.4
        if on_cross:
            gy, t = ground_row(*street.cross)
            gx = size * rng.uniform(-0.1, 1.1)
        else:
            left, right = street.road_edges(gy)
            gx = rng.uniform(max(left, -0.1 * size), min(right, 1.1 * size))
        side_view = on_cross or rng.random() < 0.35
        objects.append((gy, len(objects), 'car', gx, t, side_view))
    for _ in range(rng.integers(0, 5)):
        gy, t = ground_row(0.3, 1.1)
        objects.append((gy, len(objects), 'person',
                        size * rng.uniform(-0.05, 1.05), t, None))
    for _ in range(rng.integers(0, 3)):
        gy, t = ground_row(0.25, 1.0)
        left, right = street.road_edges(gy)
        edge = left if rng.random() < 0.5 else right
        gx = edge + (edge - street.vanish_x) * rng.uniform(0.02, 0.3)
        if not 0.02 * size < gx < 0.98 * size:
            gx = size * rng.uniform(0.05, 0.95)
        objects.append((gy, len(objects), 'sign', gx, t, None))
    if not objects:  # every picture has at least one thing
        gy, t = ground_row(0.4, 1.0)
        objects.append((gy, 0, 'person', size * rng.uniform(0.1, 0.9), t,
                        None))
    for _ in range(rng.integers(0, 3)):
        gy, t = ground_row(0.1, 1.0)
        objects.append((gy, len(objects), 'tree',
                        size * rng.uniform(-0.05, 1.05), t, None))

    for gy, _, kind, gx, t, extra in sorted(objects):
        if kind == 'car':
            _draw_car(c, gx, gy, t, extra, c.new_instance(CAR))
        elif kind == 'person':
            _draw_person(c, gx, gy, t, c.new_instance(PERSON))
        elif kind == 'sign':
            _draw_sign(c, gx, gy, t, c.new_instance(SIGN))
        else:
            _draw_tree(c, gx, gy, t)

    # Camera: exposure, sensor noise, sometimes a slight blur.
    image = c.image * rng.uniform(0.8, 1.15) + rng.uniform(-0.05, 0.05)
    image = image + rng.uniform(0.005, 0.03) * rng.standard_normal(
        image.shape)
    if rng.random() < 0.5:
        kernel = np.array([0.25, 0.5, 0.25])
        padded = np.pad(image, ((1, 1), (1, 1), (0, 0)), mode='edge')
        image = sum(k * padded[:, i:i + size] for i, k in enumerate(kernel))
        image = sum(k * image[i:i + size] for i, k in enumerate(kernel))
    image = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)

    # Fully occluded instances are dropped and the rest renumbered 1..N.
    present = np.zeros(len(c.instance_classes) + 1, dtype=bool)
    present[np.unique(c.instance_ids)] = True
    present[0] = False
    remap = np.zeros_like(present, dtype=np.int32)
    remap[present] = np.arange(1, present.sum() + 1)
    classes = [
        cls for k, cls in enumerate(c.instance_classes) if present[k + 1]
    ]
    return Scene(image, c.label, remap[c.instance_ids], classes)


def scene_seed(seed: int, split: str, index: int) -> List[int]:
    """The entropy of image ``index`` of ``split`` (independent streams)."""
    return [int(seed), _SPLIT_CODES[split], int(index)]


def make_scene(seed: int, split: str, index: int, size: int = 96) -> Scene:
    """Scene ``index`` of ``split``: the same arguments, the same scene."""
    return render_scene(size, np.random.default_rng(
        scene_seed(seed, split, index)))


# ---------------------------------------------------------------------------
# COCO helpers
# ---------------------------------------------------------------------------
def mask_to_rle(mask: np.ndarray) -> Dict[str, object]:
    """COCO compressed RLE of a binary mask (as ``pycocotools`` writes it).

    Runs are counted in column-major order starting with a run of zeros; the
    counts are stored as deltas in 5-bit groups offset by 48 (printable).

    Args:
        mask: ``(H, W)`` binary mask.

    Returns:
        dict: ``{'size': [H, W], 'counts': str}``.
    """
    h, w = mask.shape
    flat = np.asarray(mask, dtype=bool).flatten(order='F')
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    chars = []
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            group = x & 0x1f
            x >>= 5
            more = x != -1 if group & 0x10 else x != 0
            if more:
                group |= 0x20
            chars.append(chr(group + 48))
    return {'size': [int(h), int(w)], 'counts': ''.join(chars)}


def tight_bbox(mask: np.ndarray) -> List[float]:
    """COCO box ``[x, y, w, h]`` enclosing the mask's pixels exactly."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    x0, x1, y0, y1 = cols[0], cols[-1] + 1, rows[0], rows[-1] + 1
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def coco_categories() -> List[Dict[str, object]]:
    """Categories with ids 1..K in :data:`THING_CLASSES` order."""
    return [{
        'id': COCO_CATEGORY_IDS[cls],
        'name': CLASSES[cls],
        'supercategory': COCO_SUPERCATEGORIES[cls]
    } for cls in sorted(COCO_CATEGORY_IDS, key=COCO_CATEGORY_IDS.get)]


def scene_annotations(scene: Scene,
                      min_area: int = DEFAULT_MIN_VISIBLE_AREA
                      ) -> List[Dict[str, object]]:
    """COCO annotations (without ids) of a scene's visible instances."""
    annotations = []
    for cls, mask in zip(scene.instance_classes, scene.visible_masks()):
        area = int(mask.sum())
        if area < min_area:
            continue
        annotations.append({
            'category_id': COCO_CATEGORY_IDS[cls],
            'bbox': tight_bbox(mask),
            'area': float(area),
            'iscrowd': 0,
            'segmentation': mask_to_rle(mask),
        })
    return annotations


def _coco_file(records: Sequence[dict]) -> dict:
    images, annotations = [], []
    for record in records:
        images.append(record['image'])
        annotations.extend(record['annotations'])
    return {
        'info': {
            'description': 'mmstructkd toy street scenes',
            'version': str(GENERATOR_VERSION),
        },
        'licenses': [],
        'images': images,
        'annotations': annotations,
        'categories': coco_categories(),
    }


# ---------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------
def _write_bytes(path: str, payload: bytes) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(payload)


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format='PNG', optimize=False)
    return buffer.getvalue()


def _json_bytes(obj) -> bytes:
    return (json.dumps(obj, separators=(',', ':')) + '\n').encode()


def _read_manifest(out_dir: str) -> Optional[dict]:
    path = osp.join(out_dir, MANIFEST_NAME)
    if not osp.isfile(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _is_complete(out_dir: str, manifest: dict) -> bool:
    for rel, entry in manifest.get('files', {}).items():
        path = osp.join(out_dir, rel)
        if not osp.isfile(path) or osp.getsize(path) != entry['bytes']:
            return False
    return True


def holdout_indices(num_train: int, fraction: float, seed: int) -> List[int]:
    """Indices of the train images held out for hyper-parameter choice."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(
            f'holdout_fraction must be in [0, 1), got {fraction}')
    count = int(round(fraction * num_train))
    rng = np.random.default_rng([int(seed), _HOLDOUT_STREAM])
    return sorted(rng.permutation(num_train)[:count].tolist())


def generate_toy_scenes(out_dir: Optional[str] = None,
                        num_train: int = 240,
                        num_val: int = 60,
                        size: int = 96,
                        seed: int = 0,
                        holdout_fraction: float = 0.2,
                        min_area: int = DEFAULT_MIN_VISIBLE_AREA,
                        force: bool = False,
                        verbose: bool = False) -> bool:
    """Write the toy data set in mmseg and COCO layouts (idempotent).

    Layout under ``out_dir``::

        img_dir/{train,val}/{split}_NNNNN.png   RGB pictures
        ann_dir/{train,val}/{split}_NNNNN.png   uint8 class maps (0..4)
        annotations/instances_{train,val,train_fit,train_holdout}.json
        splits/{train,val,train_fit,train_holdout}.txt  names, no suffix
        manifest.json                           parameters + file hashes

    Args:
        out_dir: Output root; defaults to :func:`default_data_root`.
        num_train: Number of training pictures.
        num_val: Number of validation pictures.
        size: Side of the square pictures in pixels.
        seed: Seed of the whole set.
        holdout_fraction: Share of train listed in ``train_holdout`` (the rest
            in ``train_fit``) for choosing hyper-parameters without val.
        min_area: Visible instances smaller than this many pixels are left out
            of the COCO files (they stay in the class maps).
        force: Regenerate even when the manifest matches.
        verbose: Print what is done.

    Returns:
        bool: True if files were written, False if the set was up to date.
    """
    out_dir = osp.abspath(out_dir or default_data_root())
    if num_train < 1 or num_val < 1:
        raise ValueError('num_train and num_val must be at least 1, got '
                         f'{num_train} and {num_val}')
    params = dict(
        generator_version=GENERATOR_VERSION,
        num_train=int(num_train),
        num_val=int(num_val),
        size=int(size),
        seed=int(seed),
        holdout_fraction=float(holdout_fraction),
        min_area=int(min_area))
    old = _read_manifest(out_dir)
    if (not force and old is not None and old.get('params') == params
            and _is_complete(out_dir, old)):
        if verbose:
            print(f'{out_dir} is up to date ({_describe(params)}); '
                  'nothing to do (use --force to rewrite)')
        return False
    holdout = holdout_indices(num_train, holdout_fraction, seed)

    start = time.perf_counter()
    # Files of an earlier, different set must not linger (e.g. fewer images).
    if old is not None:
        for rel in old.get('files', {}):
            path = osp.join(out_dir, rel)
            if osp.isfile(path):
                os.remove(path)
        manifest_path = osp.join(out_dir, MANIFEST_NAME)
        if osp.isfile(manifest_path):
            os.remove(manifest_path)

    files: Dict[str, dict] = {}

    def write(rel: str, payload: bytes) -> None:
        _write_bytes(osp.join(out_dir, rel), payload)
        files[rel] = {
            'bytes': len(payload),
            'sha256': hashlib.sha256(payload).hexdigest()
        }

    counts = {'train': num_train, 'val': num_val}
    records: Dict[str, List[dict]] = {}
    ann_id = 0
    for split in SPLITS:
        records[split] = []
        for index in range(counts[split]):
            name = f'{split}_{index:05d}'
            scene = make_scene(seed, split, index, size)
            write(f'img_dir/{split}/{name}.png', _png_bytes(scene.image))
            write(f'ann_dir/{split}/{name}.png', _png_bytes(scene.label))
            annotations = scene_annotations(scene, min_area)
            for ann in annotations:
                ann_id += 1
                ann['id'] = ann_id
                ann['image_id'] = index + 1
            records[split].append({
                'name': name,
                'image': {
                    'id': index + 1,
                    'file_name': f'{name}.png',
                    'height': size,
                    'width': size
                },
                'annotations': annotations,
            })

    held = set(holdout)
    subsets = {
        'train': records['train'],
        'val': records['val'],
        'train_fit': [r for i, r in enumerate(records['train'])
                      if i not in held],
        'train_holdout': [records['train'][i] for i in holdout],
    }
    for subset, chosen in subsets.items():
        write(f'annotations/instances_{subset}.json',
              _json_bytes(_coco_file(chosen)))
        write(f'splits/{subset}.txt',
              ''.join(r['name'] + '\n' for r in chosen).encode())

    # The manifest goes last: it marks a complete set.
    manifest = {'params': params, 'files': files}
    _write_bytes(osp.join(out_dir, MANIFEST_NAME), _json_bytes(manifest))
    if verbose:
        print(f'wrote {len(files)} files to {out_dir} ({_describe(params)}) '
              f'in {time.perf_counter() - start:.1f} s')
    return True


def _describe(params: dict) -> str:
    return (f"{params['num_train']} train + {params['num_val']} val, "
            f"{params['size']}x{params['size']}, seed {params['seed']}")


def colourise(label: np.ndarray) -> np.ndarray:
    """``(H, W)`` class map to ``(H, W, 3)`` uint8 RGB with :data:`PALETTE`;
    values outside the classes (e.g. 255 = ignore) become white."""
    lut = np.full((256, 3), 255, np.uint8)
    lut[:len(PALETTE)] = np.array(PALETTE, np.uint8)
    return lut[label]


def save_montage(data_root: str,
                 path: str,
                 split: str = 'train',
                 num: int = 6,
                 zoom: int = 3) -> None:
    """Save pictures (top row), class maps (middle) and COCO boxes (bottom).

    Args:
        data_root: A root written by :func:`generate_toy_scenes`.
        path: Where to write the PNG.
        split: ``'train'`` or ``'val'``.
        num: Number of columns (first ``num`` pictures of the split).
        zoom: Nearest-neighbour magnification.
    """
    with open(osp.join(data_root, f'annotations/instances_{split}.json')) as f:
        coco = json.load(f)
    boxes: Dict[int, list] = {}
    for ann in coco['annotations']:
        boxes.setdefault(ann['image_id'], []).append(ann)
    columns = []
    for info in coco['images'][:num]:
        name = osp.splitext(info['file_name'])[0]
        image = np.array(
            Image.open(osp.join(data_root, 'img_dir', split,
                                info['file_name'])).convert('RGB'))
        label = np.array(
            Image.open(osp.join(data_root, 'ann_dir', split, name + '.png')))
        boxed = image.copy()
        for ann in boxes.get(info['id'], []):
            x, y, w, h = (int(v) for v in ann['bbox'])
            colour = THING_PALETTE[ann['category_id'] - 1]
            boxed[y, x:x + w] = colour
            boxed[y + h - 1, x:x + w] = colour
            boxed[y:y + h, x] = colour
            boxed[y:y + h, x + w - 1] = colour
        gap = np.full((2, image.shape[1], 3), 255, np.uint8)
        columns.append(
            np.concatenate([image, gap, colourise(label), gap, boxed], 0))
    spacer = np.full((columns[0].shape[0], 2, 3), 255, np.uint8)
    grid = np.concatenate(
        [part for col in columns for part in (col, spacer)][:-1], 1)
    grid = grid.repeat(zoom, 0).repeat(zoom, 1)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    Image.fromarray(grid).save(path)


# ---------------------------------------------------------------------------
# Data sets
# ---------------------------------------------------------------------------
@DATASETS.register_module()
class ToySceneSegDataset(NonEmptyDatasetMixin, BaseSegDataset):
    """The toy street scenes in mmseg's layout (5 classes, no zero reduction).

    Example config::

        dict(type='mmstructkd.ToySceneSegDataset', data_root='data/toy_scenes',
             data_prefix=dict(img_path='img_dir/train',
                              seg_map_path='ann_dir/train'),
             ann_file='splits/train_fit.txt', pipeline=[...])
    """
    METAINFO = dict(classes=CLASSES, palette=PALETTE)
    EMPTY_HINT = ('; to write the toy scenes there, run '
                  'python tools/make_toy_data.py --out DATA_ROOT')

    def __init__(self,
                 img_suffix: str = '.png',
                 seg_map_suffix: str = '.png',
                 reduce_zero_label: bool = False,
                 **kwargs) -> None:
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=reduce_zero_label,
            **kwargs)


@DATASETS.register_module()
class ToySceneCocoDataset(NonEmptyDatasetMixin, CocoDataset):
    """The toy street scenes' things as a COCO instance set (3 classes).

    Example config::

        dict(type='mmstructkd.ToySceneCocoDataset',
             data_root='data/toy_scenes',
             ann_file='annotations/instances_train.json',
             data_prefix=dict(img='img_dir/train/'), pipeline=[...])
    """
    METAINFO = dict(classes=THING_CLASSES, palette=THING_PALETTE)
    EMPTY_HINT = ('; to write the toy scenes there, run '
                  'python tools/make_toy_data.py --out DATA_ROOT')
