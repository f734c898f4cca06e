"""Stop a distillation run early when its teacher is wrong."""
import math
from typing import Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmstructkd.engine.runner.teacher_evaluation import evaluate_teacher
from mmstructkd.models.utils.model_wrappers import unwrap_model
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
        algorithm = unwrap_model(runner.model)
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

    def evaluate_teacher(self, runner, teacher) -> float:
        """The teacher's ``metric`` on (``max_batches`` of) the val set."""
        loop = runner.val_loop
        metrics = evaluate_teacher(teacher, loop.dataloader, loop.evaluator,
                                   max_batches=self.max_batches)
        self.teacher_metrics = metrics
        if self.metric not in metrics:
            raise TeacherCheckError(
                f'TeacherCheckHook: metric {self.metric!r} not among the '
                f'val metrics {sorted(metrics)}; set `metric` to one of them.')
        value = float(metrics[self.metric])
        return value if not math.isnan(value) else float('-inf')
