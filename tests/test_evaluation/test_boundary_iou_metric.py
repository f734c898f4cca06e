"""Boundary IoU against a direct per-pixel implementation of its definition,
and through mmengine's Evaluator the way a val loop calls it."""
import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator

import mmstructkd  # noqa: F401
from mmstructkd.evaluation import (BoundaryIoUMetric, boundary_band,
                                   boundary_iou_counts)


def naive_band(mask, d):
    """Pixels of the mask with a non-mask pixel in their (2d+1) square,
    coordinates clamped to the frame (the frame is not a contour)."""
    h, w = mask.shape
    out = np.zeros_like(mask)
    for y in range(h):
        for x in range(w):
            if not mask[y, x]:
                continue
            for dy in range(-d, d + 1):
                for dx in range(-d, d + 1):
                    yy = min(max(y + dy, 0), h - 1)
                    xx = min(max(x + dx, 0), w - 1)
                    if not mask[yy, xx]:
                        out[y, x] = True
    return out


def blobby_labels(rng, h, w, k):
    """Piecewise-constant label maps (upsampled noise), so bands are real."""
    coarse = rng.integers(0, k, (h // 4 + 1, w // 4 + 1))
    return np.kron(coarse, np.ones((4, 4), dtype=int))[:h, :w]


@pytest.mark.parametrize('d', [1, 2, 3])
def test_band_matches_definition(d):
    rng = np.random.default_rng(d)
    labels = blobby_labels(rng, 19, 23, 3)
    masks = np.stack([labels == c for c in range(3)])
    ours = boundary_band(torch.from_numpy(masks), d).numpy()
    for c in range(3):
        np.testing.assert_array_equal(ours[c], naive_band(masks[c], d))


def test_counts_match_definition_with_ignored_pixels():
    rng = np.random.default_rng(0)
    gt = blobby_labels(rng, 20, 24, 4)
    pred = blobby_labels(rng, 20, 24, 4)
    gt[3:7, 5:11] = 255
    inter, union = boundary_iou_counts(torch.from_numpy(pred),
                                       torch.from_numpy(gt), 4, 2)
    valid = gt != 255
    for c in range(4):
        g = naive_band(gt == c, 2) & valid
        p = naive_band(pred == c, 2) & valid
        assert inter[c].item() == (g & p).sum()
        assert union[c].item() == (g | p).sum()


def test_shape_mismatch_is_named():
    with pytest.raises(ValueError, match='BoundaryIoUMetric'):
        boundary_iou_counts(torch.zeros(4, 4, dtype=torch.long),
                            torch.zeros(4, 5, dtype=torch.long), 2, 1)


def run_evaluator(pairs, num_classes, ratio=0.02):
    evaluator = Evaluator(BoundaryIoUMetric(dilation_ratio=ratio))
    evaluator.dataset_meta = dict(classes=[str(i) for i in range(num_classes)])
    samples = [
        dict(pred_sem_seg=dict(data=torch.from_numpy(p)[None]),
             gt_sem_seg=dict(data=torch.from_numpy(g)[None]))
        for p, g in pairs
    ]
    evaluator.process(samples)
    return evaluator.evaluate(len(samples))


def test_evaluator_aggregates_over_images():
    rng = np.random.default_rng(1)
    pairs = [(blobby_labels(rng, 48, 48, 3), blobby_labels(rng, 48, 48, 3))
             for _ in range(3)]
    d = max(1, round(0.02 * np.hypot(48, 48)))
    inter = np.zeros(3)
    union = np.zeros(3)
    for p, g in pairs:
        for c in range(3):
            gb, pb = naive_band(g == c, d), naive_band(p == c, d)
            inter[c] += (gb & pb).sum()
            union[c] += (gb | pb).sum()
    expected = round(float((inter / union).mean() * 100), 2)
    assert run_evaluator(pairs, 3)['bIoU'] == pytest.approx(expected)


def test_perfect_prediction_scores_100_and_shifted_scores_less():
    rng = np.random.default_rng(2)
    g = blobby_labels(rng, 32, 32, 3)
    assert run_evaluator([(g, g)], 3)['bIoU'] == 100.0
    shifted = np.roll(g, 2, axis=1)
    assert run_evaluator([(shifted, g)], 3)['bIoU'] < 90.0
