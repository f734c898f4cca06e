"""Evaluation metrics mmseg and mmdet do not ship (boundary quality)."""
from .metrics import BoundaryIoUMetric, boundary_band, boundary_iou_counts

__all__ = ['BoundaryIoUMetric', 'boundary_band', 'boundary_iou_counts']
