from .autocast_optim_wrapper import AutocastOptimWrapper
from .separate_optim_wrapper_constructor import SeparateOptimWrapperConstructor

__all__ = ['AutocastOptimWrapper', 'SeparateOptimWrapperConstructor']
