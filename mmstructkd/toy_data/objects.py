"""What stands on the street of a toy scene: cars (side or rear view),
people, signs (the thing classes) and trees (vegetation, a stuff class, in
front of them). Each is drawn at its foot point ``(gx, gy)`` with a size that follows
the perspective depth ``t`` of that point.
"""
from __future__ import annotations

import numpy as np

from .canvas import Canvas, random_colour
from .classes import CAR, PERSON, SIGN, VEGETATION


def depth_size(c: Canvas, t: float, fraction: float, low: float,
               high: float) -> float:
    """``fraction`` of the picture's side at depth ``t`` (1 on the bottom
    row), times a random factor in ``[low, high)`` and the canvas's
    ``object_scale``: near objects are big."""
    return c.object_scale * c.size * fraction * t * c.rng.uniform(low, high)


def draw_car(c: Canvas, gx: float, gy: float, t: float, side_view: bool,
             instance_id: int) -> None:
    """A car from the side (body, cabin, windows, two wheels, a lamp) or
    from behind (narrower and taller, wheels under the corners)."""
    rng = c.rng
    width = depth_size(c, t, 0.42, 0.75, 1.25)
    body_colour = random_colour(rng)
    glass = random_colour(rng, sat=(0, 0.6), val=(0.1, 0.7))
    tyre = random_colour(rng, sat=(0, 0.3), val=(0.02, 0.3))
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
                    random_colour(rng, sat=(0, 0.2), val=(0.4, 0.9)), CAR,
                    instance_id)
        lamp_x = x1 - 0.05 * width if front_first else x0
        c.paint(c.rect(lamp_x, body_top + 0.1 * width, lamp_x + 0.05 * width,
                       body_top + 0.16 * width), random_colour(rng), CAR,
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
        lamp = random_colour(rng, hue=(-0.05, 0.1), sat=(0.5, 1.0))
        lamp_y0 = body_top + 0.12 * w
        for lx in (x0 + 0.05 * w, x1 - 0.2 * w):
            c.paint(c.rect(lx, lamp_y0, lx + 0.15 * w, lamp_y0 + 0.1 * w),
                    lamp, CAR, instance_id)
        c.paint(c.rect(gx - 0.12 * w, body_bottom - 0.17 * w, gx + 0.12 * w,
                       body_bottom - 0.07 * w),
                random_colour(rng, sat=(0, 0.2), val=(0.6, 1.0)), CAR,
                instance_id)


def draw_person(c: Canvas, gx: float, gy: float, t: float,
                instance_id: int) -> None:
    """A walking person: legs in a stride, torso, swinging arms, head,
    sometimes hair or a hat; limbs are a pixel or two wide."""
    rng = c.rng
    h = depth_size(c, t, 0.32, 0.8, 1.2)
    limb = max(0.8, 0.085 * h)
    trousers, shirt = random_colour(rng), random_colour(rng)
    skin = random_colour(
        rng, hue=(0.02, 0.12), sat=(0.2, 0.7), val=(0.3, 0.95))
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
            & (c.y < head_y - 0.2 * head_r), random_colour(rng), PERSON,
            instance_id)


def draw_sign(c: Canvas, gx: float, gy: float, t: float,
              instance_id: int) -> None:
    """A thin pole with one or two plates (round, square, triangular,
    diamond or a wide street-name plate), each a rim around a face."""
    rng = c.rng
    pole_h = depth_size(c, t, 0.5, 0.8, 1.2)
    pole_w = max(1.0, 0.03 * pole_h)
    c.paint(
        c.rect(gx - pole_w / 2, gy - pole_h, gx + pole_w / 2, gy),
        random_colour(rng, sat=(0, 0.4)), SIGN, instance_id)
    plates = 2 if rng.random() < 0.2 else 1
    d = pole_h * rng.uniform(0.24, 0.34)
    cy = gy - pole_h + 0.4 * d
    for _ in range(plates):
        rim, face = random_colour(rng), random_colour(rng)
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


def draw_tree(c: Canvas, gx: float, gy: float, t: float) -> None:
    """Background clutter in front of things: a trunk and a leafy crown."""
    rng = c.rng
    h = depth_size(c, t, 0.6, 0.8, 1.3)
    bark = random_colour(rng, hue=(0.0, 0.15), sat=(0.2, 0.8), val=(0.1, 0.6))
    c.paint(c.rect(gx - 0.035 * h, gy - 0.6 * h, gx + 0.035 * h, gy), bark,
            VEGETATION)
    leaves = random_colour(rng, hue=(0.12, 0.45)) if rng.random() < 0.7 else \
        random_colour(rng)
    crown = np.zeros_like(c.x, dtype=bool)
    for _ in range(rng.integers(3, 6)):
        r = h * rng.uniform(0.12, 0.22)
        crown |= c.ellipse(gx + h * rng.uniform(-0.15, 0.15),
                           gy - h * rng.uniform(0.65, 0.85), r,
                           r * rng.uniform(0.8, 1.2))
    c.paint(crown, c.pattern(leaves, random_colour(rng, hue=(0.1, 0.5))),
            VEGETATION)
