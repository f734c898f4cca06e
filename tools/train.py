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
from mmstructkd.engine.hooks import use_finite_checkpoint_hook  # noqa: E402
from mmstructkd.datasets import check_data_folders  # noqa: E402
from mmstructkd.engine.runner import find_resumable_checkpoint  # noqa: E402
from mmstructkd.engine.runner.tool_setup import (  # noqa: E402
    add_launcher_args, enable_amp, load_tool_config)


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
    add_launcher_args(parser)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_config(args) -> Config:
    cfg = load_tool_config(args.config, args.cfg_options, args.work_dir,
                           args.launcher)
    if args.amp:
        enable_amp(cfg)
    if args.resume == 'auto':
        # The newest complete, finite checkpoint: an interrupted save or a
        # checkpoint holding NaN/Inf is skipped with a warning.
        resume_from = find_resumable_checkpoint(cfg.work_dir) \
            if osp.isdir(cfg.work_dir) else None
        if resume_from is None:
            # As mmengine's --resume with no checkpoint: start from scratch
            # (and keep the Runner from picking a broken last_checkpoint).
            print_log(
                f'--resume: no checkpoint to resume from in {cfg.work_dir}; '
                f'training starts from scratch (iteration 0).',
                logger='current', level=logging.WARNING)
        cfg.resume = resume_from is not None
        cfg.load_from = resume_from
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = build_config(args)
    # An empty or missing data folder is reported before anything is built.
    check_data_folders(cfg.train_dataloader.dataset)
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        from mmengine.registry import RUNNERS
        runner = RUNNERS.build(cfg)
    # No checkpoint with NaN/Inf is ever written (the config is unchanged).
    use_finite_checkpoint_hook(runner)
    runner.train()


if __name__ == '__main__':
    main()
