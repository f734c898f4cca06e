"""Draw one toy street scene: picture, class map and visible instances.

Classes are told apart by shape and layout, never by colour alone: every
surface (sky, facades, pavement, road, car bodies, clothes, sign plates,
trees) draws its colour from broad, overlapping distributions. Layout:

* ``sky`` (0): a vertical gradient between two colours;
* ``building`` (1): facades standing on the horizon, with window grids or
  stripes;
* ``road`` (2): a perspective trapezoid towards a vanishing point on the
  horizon, sometimes a cross street, with dashed lane lines and zebra
  stripes. In about a third of the scenes the road has the very texture of
  the sidewalk: only the kerbs, the markings and the street's geometry tell
  them apart, so the class is a matter of context, not colour;
* ``sidewalk`` (3): the pavement on both sides of the road, and its kerbs;
* ``vegetation`` (4): trees (trunk and crown), which stand in front of
  things and occlude them;
* ``car`` (5): side or rear view, body + cabin + windows + wheels;
* ``person`` (6): thin legs, torso, arms and head;
* ``sign`` (7): a pole one or two pixels wide with a round, square,
  triangular, diamond or wide plate.

Objects stand on the ground: their size follows the perspective depth of their
foot point, and they are painted far to near, so near objects occlude far
ones. Thin structures (poles, limbs) make the object boundaries the hard part.

Every image is drawn from its own random stream,
``numpy.random.default_rng([seed, split_code, index])`` (:func:`scene_seed`),
so a given image does not depend on how many others are generated.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Tuple

import numpy as np

from .canvas import Canvas
from .classes import CAR, PERSON, SIGN
from .objects import draw_car, draw_person, draw_sign, draw_tree
from .splits import SPLIT_CODES
from .street import draw_street

# Bump whenever the drawing changes: the manifest then no longer matches and
# an existing data set is regenerated instead of silently kept.
GENERATOR_VERSION = 2


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


def check_layout(object_scale: float, min_depth: float) -> None:
    """Refuse a layout :func:`render_scene` cannot draw."""
    if not object_scale > 0:
        raise ValueError(f'object_scale must be > 0, got {object_scale}')
    if not 0 <= min_depth < 1:
        raise ValueError(f'min_depth must be in [0, 1), got {min_depth}')


def render_scene(size: int,
                 rng: np.random.Generator,
                 object_scale: float = 1.0,
                 min_depth: float = 0.0) -> Scene:
    """Draw one street scene.

    The defaults draw the segmentation scenes, where far objects shrink to
    a few pixels. A detection variant raises ``object_scale`` and
    ``min_depth``, so that far fewer boxes are too small for the anchors or
    the points of a stride-4 feature map to cover.

    Args:
        size: Side of the square picture in pixels (32 or more).
        rng: The random stream; the scene is a pure function of its state.
        object_scale: Factor on the size of cars, people, signs and trees.
        min_depth: Nothing stands farther than this perspective depth
            (0 = the horizon, 1 = the bottom row): a foot point drawn at
            ``t`` in ``[low, high)`` is drawn in
            ``[max(low, min_depth), max(high, min_depth + 0.05))`` instead.
            0 changes nothing.

    Returns:
        Scene: picture, class map and visible instances.
    """
    if size < 32:
        raise ValueError(f'toy scenes need size >= 32 pixels, got {size}')
    check_layout(object_scale, min_depth)
    c = Canvas(size, rng, object_scale)
    street = draw_street(c)

    def ground_row(t_low: float, t_high: float) -> Tuple[float, float]:
        # Every range starts above 0, so min_depth=0 draws what it did.
        t = rng.uniform(max(t_low, min_depth),
                        max(t_high, min_depth + 0.05))
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
            draw_car(c, gx, gy, t, extra, c.new_instance(CAR))
        elif kind == 'person':
            draw_person(c, gx, gy, t, c.new_instance(PERSON))
        elif kind == 'sign':
            draw_sign(c, gx, gy, t, c.new_instance(SIGN))
        else:
            draw_tree(c, gx, gy, t)

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
    return [int(seed), SPLIT_CODES[split], int(index)]


def make_scene(seed: int,
               split: str,
               index: int,
               size: int = 96,
               object_scale: float = 1.0,
               min_depth: float = 0.0) -> Scene:
    """Scene ``index`` of ``split``: the same arguments, the same scene."""
    return render_scene(size,
                        np.random.default_rng(scene_seed(seed, split, index)),
                        object_scale, min_depth)
