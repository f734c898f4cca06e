from . import checkpoint_meta  # noqa: F401  (resume never runs meta code)
from .checkpoint_utils import (find_resumable_checkpoint,
                               is_complete_checkpoint,
                               nonfinite_checkpoint_tensors,
                               why_not_resumable)
from .distill_val_loop import SingleTeacherDistillValLoop

__all__ = [
    'SingleTeacherDistillValLoop', 'find_resumable_checkpoint',
    'is_complete_checkpoint', 'nonfinite_checkpoint_tensors',
    'why_not_resumable'
]
