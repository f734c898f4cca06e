from .module_recorders import (BaseModuleRecorder, ModuleInputs,
                               ModuleOutputs, closest_module_names)
from .recorder_manager import RecorderManager

__all__ = [
    'BaseModuleRecorder', 'ModuleInputs', 'ModuleOutputs', 'RecorderManager',
    'closest_module_names'
]
