from .loss_weight_scheduler_hook import (DistillLossWeightScheduleHook,
                                         loss_weight_factor)
from .teacher_check_hook import TeacherCheckError, TeacherCheckHook

__all__ = [
    'DistillLossWeightScheduleHook', 'TeacherCheckError', 'TeacherCheckHook',
    'loss_weight_factor'
]
