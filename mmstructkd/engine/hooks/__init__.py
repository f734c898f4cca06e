from .finite_checkpoint_hook import (FiniteCheckpointHook,
                                     NonFiniteCheckpointError,
                                     use_finite_checkpoint_hook)
from .loss_weight_scheduler_hook import (DistillLossWeightScheduleHook,
                                         loss_weight_factor)
from .random_state_hook import RandomStateHook
from .razor_visualization_hook import RazorVisualizationHook
from .teacher_check_hook import TeacherCheckError, TeacherCheckHook

__all__ = [
    'DistillLossWeightScheduleHook', 'FiniteCheckpointHook',
    'NonFiniteCheckpointError', 'RandomStateHook', 'RazorVisualizationHook',
    'TeacherCheckError', 'TeacherCheckHook', 'loss_weight_factor',
    'use_finite_checkpoint_hook'
]
