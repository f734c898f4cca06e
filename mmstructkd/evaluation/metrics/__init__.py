from .boundary_iou_metric import (BoundaryIoUMetric, boundary_band,
                                  boundary_iou_counts)

__all__ = ['BoundaryIoUMetric', 'boundary_band', 'boundary_iou_counts']
