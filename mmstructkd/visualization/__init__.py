"""Pictures of what is distilled and curves of the distillation losses.

``distill_maps`` computes the maps (with the losses' own helpers),
``figures`` lays them out, teacher next to student, on the canvas of
``panels``, ``predictions`` draws both networks' outputs, and ``logs`` reads
mmengine's ``scalars.json``. Used by ``tools/visualize_distill.py`` and
``tools/analyze_logs.py``.
"""
from .figures import PAINTERS, paint_loss
from .panels import DistillFigure, VisContext
from .predictions import paint_predictions
from .logs import load_scalars, select_keys, series

__all__ = [
    'PAINTERS', 'DistillFigure', 'VisContext', 'paint_loss',
    'paint_predictions', 'load_scalars', 'select_keys', 'series'
]
