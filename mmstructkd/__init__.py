"""mmstructkd: structured knowledge distillation for dense prediction.

Importing the package changes the process, on purpose, in these four ways
(and only here is this stated):

* it registers its modules (algorithms, distillers, losses, hooks, loops,
  ...) in its registries, children of mmengine's (``mmstructkd.registry``);
* it allow-lists the non-tensor types of mmengine's checkpoints for torch's
  weights-only unpickling, so mmengine can load its own checkpoints
  (``mmstructkd.utils.safe_checkpoint_loading``);
* it adds ``mmstructkd`` to mmengine's table of packages, so that
  ``mmstructkd::`` config paths resolve (``mmstructkd.utils.config_package``);
* it wraps mmengine's checkpoint loader so that resume never executes a
  config stored as ``meta['config']`` in a checkpoint
  (``mmstructkd.engine.runner.checkpoint_meta``).
"""
from . import utils  # noqa: F401  (checkpoint loading, config paths)
from .version import __version__

from . import engine, evaluation, models  # noqa: F401,E402  (registries)

__all__ = ['__version__']
