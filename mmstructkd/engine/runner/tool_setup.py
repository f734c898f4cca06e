"""What ``tools/train.py`` and ``tools/test.py`` share: the config from the
command line and a distributed set-up that also works without a GPU."""
import logging
import os.path as osp
from typing import Optional, Sequence

from mmengine.config import Config
from mmengine.logging import print_log


def load_tool_config(config_path: str,
                     cfg_options: Optional[dict] = None,
                     work_dir: Optional[str] = None,
                     launcher: str = 'none') -> Config:
    """The config of ``config_path`` with the command line applied.

    ``cfg_options`` are merged, ``work_dir`` defaults to
    ``./work_dirs/<config name>`` as in OpenMMLab's tools, and a launcher
    other than ``'none'`` gets the distributed settings of
    :func:`setup_distributed`.
    """
    cfg = Config.fromfile(config_path)
    cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config_path))[0])
    if launcher != 'none':
        setup_distributed(cfg)
    return cfg


def is_distillation(cfg: Config) -> bool:
    """Whether ``cfg.model`` is one of this package's distillation
    algorithms (``SingleTeacherDistill``, its subclasses,
    ``MultiTeacherDistill``)."""
    from mmstructkd.models.algorithms.base_distill import BaseDistill
    from mmstructkd.registry import MODELS
    model_type = cfg.model.get('type', '')
    if isinstance(model_type, type):
        return issubclass(model_type, BaseDistill)
    found = MODELS.get(str(model_type))
    return isinstance(found, type) and issubclass(found, BaseDistill)


def setup_distributed(cfg: Config) -> None:
    """Distributed settings that work on CPU (gloo) as well as on GPU.

    mmengine's launcher set-up selects a CUDA device and its default DDP
    wrapper passes CUDA ``device_ids``; without a GPU the process group is
    started here with gloo and the model is wrapped by
    ``DistillDistributedDataParallel``, which drops the ids for a CPU model.
    A distillation model gets that wrapper on GPU too, since it keeps the
    algorithm's own training step (guards, adversarial critic).
    """
    import torch
    import torch.distributed as torch_dist
    on_cuda = torch.cuda.is_available()
    if cfg.get('model_wrapper_cfg') is None and (is_distillation(cfg)
                                                 or not on_cuda):
        cfg.model_wrapper_cfg = dict(
            type='mmstructkd.DistillDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    if on_cuda:
        return
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo')


def add_launcher_args(parser, launchers: Sequence[str] = (
        'none', 'pytorch', 'slurm', 'mpi')) -> None:
    """``--launcher`` and both spellings of the local rank (torch>=2.0
    launchers pass ``--local-rank``, older ones ``--local_rank``)."""
    parser.add_argument('--launcher', choices=list(launchers),
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def enable_amp(cfg: Config, on_cuda: Optional[bool] = None) -> None:
    """Switch the optimizer wrapper(s) to mixed precision.

    On CUDA: mmengine's ``AmpOptimWrapper`` (fp16 with dynamic loss scaling).
    Without CUDA: ``mmstructkd.AutocastOptimWrapper`` (bf16 autocast; no
    scaling needed), since mmengine's AMP wrapper refuses the CPU.
    ``on_cuda``: where the model trains (default: whether CUDA is
    available).
    """
    import torch
    if on_cuda is None:
        on_cuda = torch.cuda.is_available()

    def to_amp(wrapper_cfg):
        kind = wrapper_cfg.get('type', 'OptimWrapper')
        if kind in ('AmpOptimWrapper', 'mmstructkd.AutocastOptimWrapper'):
            return
        if kind != 'OptimWrapper':
            print_log(f'--amp: optim_wrapper type {kind} left unchanged',
                      logger='current', level=logging.WARNING)
            return
        if on_cuda:
            wrapper_cfg.type = 'AmpOptimWrapper'
            wrapper_cfg.setdefault('loss_scale', 'dynamic')
        else:
            wrapper_cfg.type = 'mmstructkd.AutocastOptimWrapper'
            wrapper_cfg.setdefault('dtype', 'bfloat16')

    optim_wrapper = cfg.optim_wrapper
    if 'constructor' in optim_wrapper or 'optimizer' not in optim_wrapper:
        # An OptimWrapperDict: one wrapper per key (e.g. the discriminator).
        for value in optim_wrapper.values():
            if isinstance(value, dict) and 'optimizer' in value:
                to_amp(value)
    else:
        to_amp(optim_wrapper)
