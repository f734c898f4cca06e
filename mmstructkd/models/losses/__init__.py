from .utils import check_same_shape, float32_math, sum_over_levels

__all__ = ['check_same_shape', 'float32_math', 'sum_over_levels']
