"""``FpnTeacherDistill``: mmrazor's algorithm whose teacher runs only
``extract_feat`` (backbone and neck)."""
from mmstructkd.registry import MODELS
from .single_teacher_distill import SingleTeacherDistill


@MODELS.register_module()
class FpnTeacherDistill(SingleTeacherDistill):
    """``SingleTeacherDistill`` with ``teacher_forward_mode='feat'``.

    Each training step runs the teacher's ``extract_feat`` only, as
    mmrazor's ``FpnTeacherDistill`` does, so every teacher recorder must
    hook a module of the teacher's backbone or neck; one that does not is an
    error when the model is built (use ``SingleTeacherDistill`` for
    distillation from the teacher's heads). All other arguments are
    ``SingleTeacherDistill``'s.

    Args:
        teacher_forward_mode: ``'feat'``, the only value accepted (the
            argument exists so that a config stating it still builds).
    """

    def __init__(self, *args, teacher_forward_mode: str = 'feat',
                 **kwargs) -> None:
        if teacher_forward_mode != 'feat':
            raise ValueError(
                f"FpnTeacherDistill runs the teacher's backbone and neck "
                f"only (teacher_forward_mode='feat'), got "
                f'teacher_forward_mode={teacher_forward_mode!r}: use '
                f'SingleTeacherDistill for other modes.')
        super().__init__(*args, teacher_forward_mode='feat', **kwargs)
