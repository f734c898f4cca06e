"""Validation that evaluates the student and, optionally, the teacher."""
from typing import Dict, List, Sequence, Union

import torch
from mmengine.evaluator import Evaluator
from mmengine.model import is_model_wrapper
from mmengine.runner import ValLoop
from mmengine.runner.amp import autocast
from torch.utils.data import DataLoader

from mmstructkd.registry import LOOPS


@LOOPS.register_module()
class SingleTeacherDistillValLoop(ValLoop):
    """Evaluate the student as usual, and the teacher with ``teacher.``
    prefixed metrics.

    A wrongly loaded teacher is the most common way distillation fails
    silently; its metric next to the student's shows it at once.

    Args:
        runner, dataloader, evaluator, fp16: as ``mmengine.runner.ValLoop``.
        evaluate_teacher: ``'once'`` (first validation only, the default:
            the teacher is frozen, so its metric cannot change),
            ``'always'`` or ``'never'``.
    """

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 evaluator: Union[Evaluator, Dict, List],
                 fp16: bool = False,
                 evaluate_teacher: str = 'once') -> None:
        super().__init__(runner, dataloader, evaluator, fp16)
        if evaluate_teacher not in ('once', 'always', 'never'):
            raise ValueError(
                f'evaluate_teacher must be "once", "always" or "never", got '
                f'{evaluate_teacher!r}.')
        self.evaluate_teacher = evaluate_teacher
        self.teacher_metrics: Dict[str, float] = {}

    @property
    def algorithm(self):
        model = self.runner.model
        return model.module if is_model_wrapper(model) else model

    def run(self) -> dict:
        self.runner.call_hook('before_val')
        self.runner.call_hook('before_val_epoch')
        self.runner.model.eval()
        for idx, data_batch in enumerate(self.dataloader):
            self.run_iter(idx, data_batch)
        metrics = self.evaluator.evaluate(len(self.dataloader.dataset))

        if self.evaluate_teacher == 'always' or (
                self.evaluate_teacher == 'once' and not self.teacher_metrics):
            self.teacher_metrics = self.run_teacher()
        metrics.update(self.teacher_metrics)

        self.runner.call_hook('after_val_epoch', metrics=metrics)
        self.runner.call_hook('after_val')
        return metrics

    @torch.no_grad()
    def run_teacher(self) -> Dict[str, float]:
        teacher = self.algorithm.teacher
        for data_batch in self.dataloader:
            with autocast(enabled=self.fp16):
                outputs = teacher.val_step(data_batch)
            self.evaluator.process(data_samples=outputs, data_batch=data_batch)
        metrics = self.evaluator.evaluate(len(self.dataloader.dataset))
        return {f'teacher.{k}': v for k, v in metrics.items()}
