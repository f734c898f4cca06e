"""Schedule the weights of the distillation losses over training."""
import math
from typing import Dict, Optional, Sequence

from mmengine.hooks import Hook

from mmstructkd.models.utils.model_wrappers import unwrap_model
from mmstructkd.registry import HOOKS

POLICIES = ('constant', 'step', 'cosine')


def loss_weight_factor(iteration: int,
                       max_iters: int,
                       warmup_iters: int = 0,
                       policy: str = 'constant',
                       steps: Sequence[int] = (),
                       gamma: float = 0.1,
                       min_factor: float = 0.0,
                       stop_iter: Optional[int] = None) -> float:
    """The factor (0..1) applied to a loss's configured weight.

    ``warm-up`` ramps linearly from 0 at iteration 0 to 1 at
    ``warmup_iters``; the policy then gives ``1`` (constant),
    ``gamma ** (number of steps passed)`` (step), or a cosine decay from 1 to
    ``min_factor`` between ``warmup_iters`` and ``max_iters`` (cosine). From
    ``stop_iter`` on, the factor is 0: distillation is over.
    """
    if stop_iter is not None and iteration >= stop_iter:
        return 0.0
    if policy == 'constant':
        factor = 1.0
    elif policy == 'step':
        factor = gamma**sum(1 for s in steps if iteration >= s)
    elif policy == 'cosine':
        span = max(max_iters - warmup_iters, 1)
        progress = min(max(iteration - warmup_iters, 0) / span, 1.0)
        factor = min_factor + (1 - min_factor) * 0.5 * (
            1 + math.cos(math.pi * progress))
    else:
        raise ValueError(f'policy must be one of {POLICIES}, got {policy!r}')
    if warmup_iters > 0 and iteration < warmup_iters:
        factor *= iteration / warmup_iters
    return factor


@HOOKS.register_module()
class DistillLossWeightScheduleHook(Hook):
    """Warm up, decay or stop the distillation losses.

    The factor is a pure function of the iteration, so a resumed run gets
    exactly the weights of an uninterrupted one. The effective weight of
    each loss (its ``loss_weight`` times the factor) is logged as
    ``distill_weight.<loss name>``: its value at the logged iteration, not
    a mean over the logger's window.

    Args:
        schedules: loss name -> keyword arguments of
            :func:`loss_weight_factor` (``warmup_iters``, ``policy``,
            ``steps``, ``gamma``, ``min_factor``, ``stop_iter``). The key
            ``'default'`` applies to losses not listed.
        stop_distill_iter: from this iteration on every distillation loss is
            off (overrides the per-loss ``stop_iter``).
        skip_teacher_after_stop: once every loss is off, also stop running
            the teacher, which saves its whole forward pass.

    Example::

        custom_hooks = [dict(
            type='mmstructkd.DistillLossWeightScheduleHook',
            schedules=dict(default=dict(warmup_iters=1000),
                           loss_pa=dict(policy='cosine')),
            stop_distill_iter=70000, skip_teacher_after_stop=True)]
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self,
                 schedules: Optional[Dict[str, dict]] = None,
                 stop_distill_iter: Optional[int] = None,
                 skip_teacher_after_stop: bool = False) -> None:
        self.schedules = dict(schedules or {})
        for name, schedule in self.schedules.items():
            unknown = set(schedule) - {
                'warmup_iters', 'policy', 'steps', 'gamma', 'min_factor',
                'stop_iter'
            }
            if unknown:
                raise KeyError(
                    f'DistillLossWeightScheduleHook: schedules[{name!r}] has '
                    f'unknown keys {sorted(unknown)}.')
            if schedule.get('policy', 'constant') not in POLICIES:
                raise ValueError(
                    f'DistillLossWeightScheduleHook: schedules[{name!r}]'
                    f'.policy must be one of {POLICIES}.')
        self.stop_distill_iter = stop_distill_iter
        self.skip_teacher_after_stop = skip_teacher_after_stop

    def before_train(self, runner) -> None:
        distiller = unwrap_model(runner.model).distiller
        unknown = set(self.schedules) - set(distiller.distill_losses) - {
            'default'
        }
        if unknown:
            raise KeyError(
                f'DistillLossWeightScheduleHook: no distillation losses named '
                f'{sorted(unknown)}; the distiller has '
                f'{sorted(distiller.distill_losses)}.')
        # mmengine's log processor averages every key containing 'loss' over
        # its window, and loss names do; a weight is a schedule, not a noisy
        # measurement, so log its value at the iteration.
        custom_cfg = getattr(runner.log_processor, 'custom_cfg', None)
        if custom_cfg is not None:
            for name in distiller.distill_losses:
                key = f'distill_weight.{name}'
                if not any(c.get('data_src') == key for c in custom_cfg):
                    custom_cfg.append(
                        dict(data_src=key, method_name='current'))

    def schedule_of(self, name: str) -> dict:
        schedule = dict(
            self.schedules.get(name, self.schedules.get('default', {})))
        if self.stop_distill_iter is not None:
            schedule['stop_iter'] = self.stop_distill_iter
        return schedule

    def factors(self, iteration: int, max_iters: int,
                names: Sequence[str]) -> Dict[str, float]:
        return {
            name: loss_weight_factor(iteration, max_iters,
                                     **self.schedule_of(name))
            for name in names
        }

    def stopped(self, iteration: int, names: Sequence[str]) -> bool:
        """Whether every loss is past its stop point (a zero warm-up factor
        at iteration 0 is not a stop)."""
        stops = [self.schedule_of(name).get('stop_iter') for name in names]
        return all(s is not None and iteration >= s for s in stops)

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        algorithm = unwrap_model(runner.model)
        distiller = algorithm.distiller
        factors = self.factors(runner.iter, runner.max_iters,
                               list(distiller.distill_losses))
        for name, factor in factors.items():
            distiller.loss_weight_multipliers[name] = factor
            weight = getattr(distiller.distill_losses[name], 'loss_weight',
                             1.0)
            runner.message_hub.update_scalar(
                f'train/distill_weight.{name}', float(weight) * factor)
        if self.skip_teacher_after_stop:
            algorithm.skip_teacher_forward = self.stopped(
                runner.iter, list(factors))
