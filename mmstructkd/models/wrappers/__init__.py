from .distill_data_parallel import DistillDistributedDataParallel

__all__ = ['DistillDistributedDataParallel']
