from .crosskd_distill import CrossKDDistill
from .fpn_teacher_distill import FpnTeacherDistill
from .multi_teacher_distill import MultiTeacherDistill
from .single_teacher_distill import SingleTeacherDistill

__all__ = [
    'CrossKDDistill', 'FpnTeacherDistill', 'MultiTeacherDistill',
    'SingleTeacherDistill'
]
