from .build import build_in_scope
from .distributed import all_ranks_agree, average_gradients
from .finite_state import BufferSnapshot, named_state, nonfinite_tensors
from .label_check import LabelSpace, check_labels, check_student_labels, \
    student_label_space
from .model_wrappers import unwrap_model
from .nonfinite_guard import (NonFiniteGuard, NonFiniteStateError,
                              guard_counters, load_guard_counters,
                              nonfinite_terms)

__all__ = [
    'BufferSnapshot', 'NonFiniteGuard', 'NonFiniteStateError',
    'all_ranks_agree', 'average_gradients', 'build_in_scope',
    'guard_counters', 'load_guard_counters', 'named_state',
    'nonfinite_tensors', 'nonfinite_terms', 'LabelSpace', 'check_labels',
    'check_student_labels', 'student_label_space', 'unwrap_model'
]
