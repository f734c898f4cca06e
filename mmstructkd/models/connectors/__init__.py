from .conv_module_connector import ConvModuleConnector
from .mgd_connector import MGDConnector, random_keep_mask

__all__ = ['ConvModuleConnector', 'MGDConnector', 'random_keep_mask']
