from .conv_module_connector import ConvModuleConnector

__all__ = ['ConvModuleConnector']
