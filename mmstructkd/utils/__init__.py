from . import config_package, safe_checkpoint_loading  # noqa: F401
from .safe_checkpoint_loading import allow_mmengine_checkpoints

__all__ = ['allow_mmengine_checkpoints']
