"""The student: built as its task package builds it, with the options of
``SingleTeacherDistill`` applied."""
from typing import Optional, Union

from torch import nn

from ..task_models import build_task_model, revert_sync_batchnorm_if_needed
from .teacher_loading import load_pretrained_student


def build_student(cfg: Union[dict, nn.Module],
                  convert_sync_bn: Union[str, bool]) -> nn.Module:
    """The student built from ``cfg`` (see ``build_task_model``), SyncBN
    replaced as ``convert_sync_bn`` says, with its model-zoo weights when
    ``cfg`` says ``pretrained=True``."""
    student = revert_sync_batchnorm_if_needed(
        build_task_model(cfg, 'architecture'), convert_sync_bn)
    load_pretrained_student(student, cfg)
    return student


def student_data_preprocessor(
        data_preprocessor: Optional[Union[dict, nn.Module]],
        student: nn.Module) -> nn.Module:
    """The algorithm's data preprocessor: ``data_preprocessor`` if given
    (a config is built in its task package's scope: it is e.g. merged by the
    Runner from a top-level ``data_preprocessor`` of the config), else the
    student's own."""
    if data_preprocessor is None:
        return student.data_preprocessor
    if isinstance(data_preprocessor, dict):
        return build_task_model(data_preprocessor, 'data_preprocessor')
    return data_preprocessor
