"""mmstructkd: structured knowledge distillation for dense prediction.

Importing the package fills its registries and lets mmengine load its own
checkpoints under torch's weights-only unpickling (see
``mmstructkd.utils.safe_checkpoint_loading``).
"""
from . import utils  # noqa: F401  (checkpoint loading, config paths)
from .version import __version__

from . import engine, evaluation, models  # noqa: F401,E402  (registries)

__all__ = ['__version__']
