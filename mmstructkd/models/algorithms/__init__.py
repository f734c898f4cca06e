from .fpn_teacher_distill import FpnTeacherDistill
from .single_teacher_distill import SingleTeacherDistill

__all__ = ['FpnTeacherDistill', 'SingleTeacherDistill']
