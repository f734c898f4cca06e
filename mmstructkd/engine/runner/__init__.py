from .checkpoint_utils import (find_resumable_checkpoint,
                               is_complete_checkpoint)
from .distill_val_loop import SingleTeacherDistillValLoop

__all__ = [
    'SingleTeacherDistillValLoop', 'find_resumable_checkpoint',
    'is_complete_checkpoint'
]
