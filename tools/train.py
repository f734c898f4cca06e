"""Train a model (a distillation or a plain mmseg/mmdet config).

Usage:
    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--resume [CKPT]]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]
"""
import argparse
import logging
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner

# Run from a source checkout without installing.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import mmstructkd  # noqa: E402,F401  (registries, checkpoint loading)
from mmstructkd.engine.runner import find_resumable_checkpoint  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or, with no value, from the '
        'latest checkpoint in the work dir')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='mixed precision: fp16 on CUDA, bf16 on CPU')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value (e.g. '
        'train_cfg.max_iters=100)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch>=2.0 launchers pass --local-rank; older ones --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def enable_amp(cfg: Config) -> None:
    """Switch the optimizer wrapper(s) to mixed precision.

    On CUDA: mmengine's ``AmpOptimWrapper`` (fp16 with dynamic loss scaling).
    Without CUDA: ``mmstructkd.AutocastOptimWrapper`` (bf16 autocast; no
    scaling needed), since mmengine's AMP wrapper refuses the CPU.
    """
    import torch
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


def build_config(args) -> Config:
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        enable_amp(cfg)
    if args.resume == 'auto':
        cfg.resume = True
        # The newest *complete* checkpoint: an interrupted save is skipped.
        cfg.load_from = find_resumable_checkpoint(cfg.work_dir) \
            if osp.isdir(cfg.work_dir) else None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    if args.launcher != 'none':
        setup_distributed(cfg)
    return cfg


def is_distillation(cfg: Config) -> bool:
    return str(cfg.model.get('type', '')).endswith('SingleTeacherDistill')


def setup_distributed(cfg: Config) -> None:
    """Distributed settings that work on CPU (gloo) as well as on GPU.

    mmengine's launcher set-up selects a CUDA device and its default DDP
    wrapper passes CUDA ``device_ids``; without a GPU the process group is
    started here with gloo and the wrapper is built without them. A
    distillation model gets mmstructkd's wrapper, which keeps the
    algorithm's own training step (guards, adversarial critic).
    """
    import torch
    import torch.distributed as torch_dist
    if cfg.get('model_wrapper_cfg') is None and is_distillation(cfg):
        cfg.model_wrapper_cfg = dict(
            type='mmstructkd.DistillDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    if torch.cuda.is_available():
        return
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            type='mmstructkd.DistillDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo')


def main(argv=None):
    args = parse_args(argv)
    cfg = build_config(args)
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        from mmengine.registry import RUNNERS
        runner = RUNNERS.build(cfg)
    runner.train()


if __name__ == '__main__':
    main()
