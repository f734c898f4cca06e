"""mmrazor's switches of ``SingleTeacherDistill``, honoured or refused.

mmrazor's configs may carry four arguments that this package's algorithm
has no switch for. Each one is either honoured or refused when the model
is built; none is dropped without a word:

* ``teacher_trainable=False`` (mmrazor's default) is how the teacher always
  is here; ``True`` is refused: the teacher lives outside the module tree
  (no optimizer, no checkpoint), so it cannot be trained alongside.
* ``teacher_norm_eval=True`` (the default) is honoured: the teacher is in
  ``eval()`` mode. ``False`` (BatchNorm on batch statistics, running
  statistics updated by every step) is refused: the teacher is not saved
  in checkpoints, so such statistics would silently reset on resume.
* ``student_trainable=True`` (the default) is how the student always is;
  ``False`` is refused: the student is what this algorithm trains.
* ``calculate_student_loss`` is honoured. ``False`` keeps only the
  distillation losses; the student still runs its loss forward, so its
  recorders record as usual, and its task losses are dropped.
"""
from typing import Any, Dict

# mmrazor's argument -> its default (the value accepted as is).
MMRAZOR_DEFAULTS = dict(teacher_trainable=False, teacher_norm_eval=True,
                        student_trainable=True, calculate_student_loss=True)

REFUSED = dict(
    teacher_trainable=(
        'the teacher is frozen by design: it is kept outside the module tree '
        '(in no optimizer, not in checkpoints) and reloaded from '
        'teacher_ckpt at every start. Train the teacher on its own config '
        'first, then distil from its checkpoint; remove teacher_trainable.'),
    teacher_norm_eval=(
        'the teacher always runs in eval() mode, its BatchNorm layers on '
        'the running statistics of teacher_ckpt: the teacher is not saved '
        'in checkpoints, so statistics updated during training would be '
        'lost on resume. Remove teacher_norm_eval.'),
    student_trainable=(
        'the student is what SingleTeacherDistill trains. To keep some of '
        'its parameters fixed, give them lr_mult=0 in '
        'optim_wrapper.paramwise_cfg.custom_keys (or freeze them in the '
        'student config, e.g. backbone.frozen_stages); remove '
        'student_trainable.'))


def check_mmrazor_arguments(mmrazor_args: Dict[str, Any],
                            algorithm: str = 'SingleTeacherDistill') -> bool:
    """Check the mmrazor arguments given to ``algorithm``.

    Args:
        mmrazor_args: the keyword arguments the algorithm did not know by
            itself, e.g. ``dict(calculate_student_loss=False)``.
        algorithm: the algorithm's name, for the messages.

    Returns:
        Whether the student's own task losses are added to the
        distillation losses (mmrazor's ``calculate_student_loss``).

    Raises:
        TypeError: an argument that is not one of mmrazor's four (as for
            any unknown keyword argument).
        ValueError: a value this package refuses (see the module
            docstring), with the reason and what to do.
    """
    for name, value in mmrazor_args.items():
        if name not in MMRAZOR_DEFAULTS:
            raise TypeError(f'{algorithm}.__init__() got an unexpected '
                            f'keyword argument {name!r}')
        if not isinstance(value, bool):
            raise TypeError(f'{algorithm}: {name} must be True or False, '
                            f'got {value!r}.')
        if name in REFUSED and value != MMRAZOR_DEFAULTS[name]:
            raise ValueError(f'{algorithm}: {name}={value} is not supported: '
                             f'{REFUSED[name]}')
    return mmrazor_args.get('calculate_student_loss', True)
