"""Stop a distillation run early when its teacher is wrong."""
import math
from typing import Dict, Optional, Union

from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmstructkd.engine.runner.teacher_evaluation import evaluate_teacher
from mmstructkd.models.utils.model_wrappers import unwrap_model
from mmstructkd.registry import HOOKS


class TeacherCheckError(RuntimeError):
    """The teacher is not what the config expects; nothing was trained."""


@HOOKS.register_module()
class TeacherCheckHook(Hook):
    """Check the teacher (every teacher, with several) before the first
    training step.

    The most common way distillation fails silently is a wrongly loaded
    teacher (a checkpoint for another config, a typo in a key prefix): the
    student then learns from noise. This hook stops the run before any
    compute is spent, when

    * a teacher checkpoint left keys missing or unexpected
      (``allow_key_mismatch=False``), or
    * a teacher's metric on (part of) the val set is below ``min_metric``.

    Args:
        metric: the val metric to check, e.g. ``'mIoU'`` or
            ``'coco/bbox_mAP'``.
        min_metric: the floor; None skips the evaluation. With several
            teachers (``MultiTeacherDistill``), one floor for all, or
            teacher name -> floor (teachers left out are not evaluated).
        max_batches: evaluate on at most this many val batches (None: all).
        allow_key_mismatch: accept a checkpoint with missing/unexpected keys.
    """

    priority = 'VERY_HIGH'

    def __init__(self,
                 metric: str = 'mIoU',
                 min_metric: Union[None, float, Dict[str, float]] = None,
                 max_batches: Optional[int] = None,
                 allow_key_mismatch: bool = False) -> None:
        self.metric = metric
        self.min_metric = min_metric
        self.max_batches = max_batches
        self.allow_key_mismatch = allow_key_mismatch
        # The metrics of the teacher evaluated last; of each, by name.
        self.teacher_metrics = {}
        self.metrics_by_teacher = {}

    def before_train(self, runner) -> None:
        algorithm = unwrap_model(runner.model)
        frozen_teachers = getattr(algorithm, 'frozen_teachers', None)
        if frozen_teachers is None:
            raise TeacherCheckError(
                'TeacherCheckHook needs a distillation model '
                '(SingleTeacherDistill, MultiTeacherDistill); remove the '
                'hook from this config.')
        for frozen in frozen_teachers.values():
            self.check_loading(frozen)
        floors = self.floors(frozen_teachers)
        for name, floor in floors.items():
            frozen = frozen_teachers[name]
            value = self.evaluate_teacher(runner, frozen.model)
            self.metrics_by_teacher[name] = self.teacher_metrics
            who = 'teacher' if name is None else f'teacher {name!r}'
            print_log(
                f'TeacherCheckHook: {who} {self.metric} = {value:.4f} '
                f'(floor {floor})', logger='current')
            if not value >= floor:
                raise TeacherCheckError(
                    f'{frozen.label} scores {self.metric}={value:.4f} on the '
                    f'val set, below the configured floor {floor}: its '
                    f'checkpoint ({frozen.ckpt}) is probably not the one '
                    f'meant for this teacher config or data. Nothing was '
                    f'trained.')

    def check_loading(self, frozen) -> None:
        """Refuse a teacher without weights, or one whose checkpoint left
        keys missing or unexpected (unless ``allow_key_mismatch``)."""
        if frozen.ckpt is None:
            raise TeacherCheckError(
                f'TeacherCheckHook: {frozen.label} has no '
                f'{frozen.option("ckpt")}, so it has random weights. Set '
                f'model.{frozen.option("ckpt")}. Nothing was trained.')
        report = frozen.load_report
        missing, unexpected = report['missing_keys'], report[
            'unexpected_keys']
        if (missing or unexpected) and not self.allow_key_mismatch:
            raise TeacherCheckError(
                f'{frozen.option("ckpt")} {frozen.ckpt} does not match the '
                f'teacher config: {len(missing)} missing keys (e.g. '
                f'{missing[:5]}) and {len(unexpected)} unexpected keys (e.g. '
                f'{unexpected[:5]}). Check the teacher and its checkpoint, '
                f'or set allow_key_mismatch=True if this is intended. '
                f'Nothing was trained.')

    def floors(self, frozen_teachers) -> Dict[Optional[str], float]:
        """Teacher name -> the floor of its metric (those to evaluate)."""
        if self.min_metric is None:
            return {}
        if not isinstance(self.min_metric, dict):
            return {name: self.min_metric for name in frozen_teachers}
        unknown = sorted(set(self.min_metric) - set(frozen_teachers))
        if unknown:
            raise TeacherCheckError(
                f'TeacherCheckHook: min_metric names {unknown}, which are '
                f'not teachers (teachers: {list(frozen_teachers)}).')
        return {name: self.min_metric[name] for name in frozen_teachers
                if name in self.min_metric}

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
