"""The loss benchmark cases, one module per loss family (see
:mod:`mmstructkd.benchmarks.losses`). The driver finds them by file name
and loads each by its path (``--cases-dir`` points at another folder)."""
