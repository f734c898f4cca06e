"""``HeadPredictions``: a recorder that the algorithm fills, not a hook.

CrossKD's predictions are computed by the algorithm (``CrossKDDistill``), by
calling the teacher's head modules on chosen features: the cross-head
predictions (the student's features through the teacher's remaining head
layers) and the teacher's own. This recorder holds them for the distiller,
so that ``loss_forward_mappings`` feed them to the losses like any recorded
tensor: ``data_idx=0`` for the class scores, ``data_idx=1`` for the box
predictions, each a tuple of FPN levels.
"""
from typing import Sequence

from torch import Tensor, nn

from mmstructkd.registry import TASK_UTILS
from .module_recorders import BaseModuleRecorder, closest_module_names


@TASK_UTILS.register_module()
class HeadPredictions(BaseModuleRecorder):
    """``(cls_scores, bbox_preds)`` of a dense head, each a tuple of FPN
    levels, put here by the algorithm while recording is on.

    In ``student_recorders``: the cross-head predictions (they depend on the
    student, and its gradients flow through them); in
    ``teacher_recorders``: the teacher's own head predictions.

    Args:
        source: the dense head in the model (``'bbox_head'``); checked to
            exist when the recorder is initialised, but never hooked.
    """

    def initialize(self, model: nn.Module) -> None:
        try:
            model.get_submodule(self.source)
        except AttributeError:
            close = closest_module_names(model, self.source)
            raise KeyError(
                f'HeadPredictions: no module named {self.source!r} in '
                f'{type(model).__name__}. Closest module names: {close}.'
            ) from None

    def put(self, cls_scores: Sequence[Tensor],
            bbox_preds: Sequence[Tensor]) -> None:
        """Record one set of predictions (ignored while not recording)."""
        if self.recording:
            self.data_buffer.append((tuple(cls_scores), tuple(bbox_preds)))
