from .distributed import all_ranks_agree, average_gradients
from .finite_state import BufferSnapshot, named_state, nonfinite_tensors
from .label_check import LabelSpace, check_labels, check_student_labels, \
    student_label_space
from .nonfinite_guard import (NonFiniteGuard, NonFiniteStateError,
                              nonfinite_terms)

__all__ = [
    'BufferSnapshot', 'NonFiniteGuard', 'NonFiniteStateError',
    'all_ranks_agree', 'average_gradients', 'named_state',
    'nonfinite_tensors', 'nonfinite_terms', 'LabelSpace',
    'check_labels', 'check_student_labels', 'student_label_space'
]
