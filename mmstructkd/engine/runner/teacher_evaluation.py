"""Evaluate the frozen teacher(s) on the validation data."""
from typing import Dict, Mapping, Optional

import torch
from mmengine.evaluator import Evaluator
from mmengine.runner.amp import autocast
from torch import nn
from torch.utils.data import DataLoader


@torch.no_grad()
def evaluate_teacher(teacher: nn.Module,
                     dataloader: DataLoader,
                     evaluator: Evaluator,
                     max_batches: Optional[int] = None,
                     fp16: bool = False) -> Dict[str, float]:
    """The metrics of ``teacher`` (its ``val_step``) over ``dataloader``.

    Args:
        teacher: a plain mmseg/mmdet model.
        dataloader: the val loop's dataloader.
        evaluator: the val loop's evaluator (its results are consumed, as
            in a validation).
        max_batches: evaluate on at most this many batches (None: all).
        fp16: run the teacher under ``autocast``, as ``ValLoop(fp16=True)``.

    Returns:
        The evaluator's metrics, unprefixed.
    """
    seen = 0
    for idx, data_batch in enumerate(dataloader):
        if max_batches is not None and idx >= max_batches:
            break
        with autocast(enabled=fp16):
            outputs = teacher.val_step(data_batch)
        evaluator.process(data_samples=outputs, data_batch=data_batch)
        seen += len(outputs)
    # The data set's size, as ValLoop gives it, when every batch was seen
    # (it drops the samples a distributed sampler repeats).
    whole = max_batches is None or max_batches >= len(dataloader)
    return evaluator.evaluate(len(dataloader.dataset) if whole else seen)


def teacher_metric_prefix(name: Optional[str]) -> str:
    """``teacher.`` for the only teacher, ``teacher.<name>.`` for one of
    several (``MultiTeacherDistill``)."""
    return 'teacher.' if name is None else f'teacher.{name}.'


def evaluate_teachers(teachers: Mapping[Optional[str], nn.Module],
                      dataloader: DataLoader,
                      evaluator: Evaluator,
                      max_batches: Optional[int] = None,
                      fp16: bool = False) -> Dict[str, float]:
    """:func:`evaluate_teacher` for every teacher of ``teachers`` (name ->
    model, as the algorithm's ``teachers``), each once, its metrics
    prefixed by :func:`teacher_metric_prefix`."""
    metrics = {}
    for name, teacher in teachers.items():
        prefix = teacher_metric_prefix(name)
        metrics.update({
            prefix + key: value for key, value in evaluate_teacher(
                teacher, dataloader, evaluator, max_batches, fp16).items()
        })
    return metrics
