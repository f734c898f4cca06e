"""Moved to :mod:`mmstructkd.models.utils.nonfinite_guard` (the guard is a
training-step utility, not a loss); this path keeps old imports working."""
from ..utils.nonfinite_guard import (NonFiniteGuard,  # noqa: F401
                                     NonFiniteStateError, nonfinite_terms)
