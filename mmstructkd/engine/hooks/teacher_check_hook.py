"""Stop a distillation run early when its teacher is wrong."""
import math
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmstructkd.registry import HOOKS


class TeacherCheckError(RuntimeError):
    """The teacher is not what the config expects; nothing was trained."""


@HOOKS.register_module()
class TeacherCheckHook(Hook):
    """Check the teacher before the first training step.

    The most common way distillation fails silently is a wrongly loaded
    teacher (a checkpoint for another config, a typo in a key prefix): the
    student then learns from noise. This hook stops the run before any
    compute is spent, when

    * the teacher checkpoint left keys missing or unexpected
      (``allow_key_mismatch=False``), or
    * the teacher's metric on (part of) the val set is below ``min_metric``.

    Args:
        metric: the val metric to check, e.g. ``'mIoU'`` or
            ``'coco/bbox_mAP'``.
        min_metric: the floor; None skips the evaluation.
        max_batches: evaluate on at most this many val batches (None: all).
        allow_key_mismatch: accept a checkpoint with missing/unexpected keys.
    """

    priority = 'VERY_HIGH'

    def __init__(self,
                 metric: str = 'mIoU',
                 min_metric: Optional[float] = None,
                 max_batches: Optional[int] = None,
                 allow_key_mismatch: bool = False) -> None:
        self.metric = metric
        self.min_metric = min_metric
        self.max_batches = max_batches
        self.allow_key_mismatch = allow_key_mismatch
        self.teacher_metrics = {}

    def before_train(self, runner) -> None:
        model = runner.model
        algorithm = model.module if is_model_wrapper(model) else model
        report = getattr(algorithm, 'teacher_load_report', None)
        if report is None:
            raise TeacherCheckError(
                'TeacherCheckHook needs a distillation model '
                '(SingleTeacherDistill); remove the hook from this config.')
        if algorithm.teacher_ckpt is None:
            raise TeacherCheckError(
                'TeacherCheckHook: the teacher has no teacher_ckpt, so it '
                'has random weights. Set model.teacher_ckpt. Nothing was '
                'trained.')
        missing, unexpected = report['missing_keys'], report[
            'unexpected_keys']
        if (missing or unexpected) and not self.allow_key_mismatch:
            raise TeacherCheckError(
                f'teacher_ckpt {algorithm.teacher_ckpt} does not match the '
                f'teacher config: {len(missing)} missing keys (e.g. '
                f'{missing[:5]}) and {len(unexpected)} unexpected keys (e.g. '
                f'{unexpected[:5]}). Check teacher / teacher_ckpt, or set '
                f'allow_key_mismatch=True if this is intended. Nothing was '
                f'trained.')
        if self.min_metric is None:
            return
        value = self.evaluate_teacher(runner, algorithm.teacher)
        print_log(
            f'TeacherCheckHook: teacher {self.metric} = {value:.4f} '
            f'(floor {self.min_metric})', logger='current')
        if not value >= self.min_metric:
            raise TeacherCheckError(
                f'the teacher scores {self.metric}={value:.4f} on the val '
                f'set, below the configured floor {self.min_metric}: its '
                f'checkpoint ({algorithm.teacher_ckpt}) is probably not the '
                f'one meant for this teacher config or data. Nothing was '
                f'trained.')

    @torch.no_grad()
    def evaluate_teacher(self, runner, teacher) -> float:
        loop = runner.val_loop
        evaluator = loop.evaluator
        seen = 0
        for idx, data_batch in enumerate(loop.dataloader):
            if self.max_batches is not None and idx >= self.max_batches:
                break
            outputs = teacher.val_step(data_batch)
            evaluator.process(data_samples=outputs, data_batch=data_batch)
            seen += len(outputs)
        metrics = evaluator.evaluate(seen)
        self.teacher_metrics = metrics
        if self.metric not in metrics:
            raise TeacherCheckError(
                f'TeacherCheckHook: metric {self.metric!r} not among the '
                f'val metrics {sorted(metrics)}; set `metric` to one of them.')
        value = float(metrics[self.metric])
        return value if not math.isnan(value) else float('-inf')
