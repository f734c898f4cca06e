"""The private parts of mmengine that this package relies on, in one place.

Each has no public equivalent in mmengine 0.10.7, the version this module was
checked against; an mmengine upgrade should start by checking these.
"""
from typing import FrozenSet


def history_buffer_statistics() -> FrozenSet[str]:
    """The names of ``HistoryBuffer``'s statistics methods: the defaults
    (``min``, ``max``, ``current``, ``mean``) and those added with
    ``HistoryBuffer.register_statistics``.

    Read from the private class attribute ``_statistics_methods`` (mmengine
    0.10.7 lists the registered methods nowhere else).
    """
    from mmengine.logging import HistoryBuffer
    defaults = {'min', 'max', 'current', 'mean'}
    return frozenset(HistoryBuffer._statistics_methods) | defaults
