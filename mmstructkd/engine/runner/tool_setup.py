"""What ``tools/train.py`` and ``tools/test.py`` share: the config from the
command line and a distributed set-up that also works without a GPU."""
import os.path as osp
from typing import Optional, Sequence

from mmengine.config import Config


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
    return str(cfg.model.get('type', '')).endswith('SingleTeacherDistill')


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
