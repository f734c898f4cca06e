"""The three kinds of training step, built with random weights, and their
interleaved timing."""
import os.path as osp
import statistics
import time

import torch

from ..config_lists import REPO_ROOT
from ..machine import load_average
from ..random_batches import det_batch, seg_batch
from .specs import CONDITIONS


def batch_maker(student, spec):
    """seed -> a batch for this config's task and size."""
    if spec['task'] == 'seg':
        num_classes = student.decode_head.num_classes

        def make(seed):
            return seg_batch(spec['batch'], spec['size'], num_classes, seed)
    else:
        roi_head = getattr(student, 'roi_head', None)
        head = getattr(student, 'bbox_head', None) or roi_head.bbox_head
        with_masks = bool(getattr(roi_head, 'with_mask', False))

        def make(seed):
            return det_batch(spec['batch'], spec['size'], head.num_classes,
                             seed, with_masks)
    return make


# --------------------------------------------------------------- steps ---
def build(spec, device):
    """The algorithm (random weights), its optimizer wrappers, a batch
    maker. ``spec['amp']``: the optimizer wrappers switched to mixed
    precision as ``tools/train.py --amp`` does (fp16 on CUDA, bf16 on
    CPU)."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    import mmstructkd  # noqa: F401
    from mmstructkd.engine.runner.tool_setup import enable_amp
    from mmstructkd.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO_ROOT, spec['config']))
    if spec.get('amp'):
        enable_amp(cfg, on_cuda=str(device).startswith('cuda'))
    # Random weights: nothing is loaded or downloaded (building a model
    # does not run init_weights, so pretrained backbones are not fetched
    # either).
    if 'teachers' in cfg.model:  # MultiTeacherDistill
        for teacher in cfg.model.teachers.values():
            teacher.ckpt = None
    else:
        cfg.model.teacher_ckpt = None
    model = MODELS.build(cfg.model)
    if getattr(model.data_preprocessor, 'size', None) is not None:
        # Pad to the measured size, not to the config's crop.
        model.data_preprocessor.size = tuple(spec['size'])
    model = model.to(device).train()
    wrappers = build_optim_wrapper(model, cfg.optim_wrapper)
    return model, wrappers, batch_maker(model.architecture, spec)


def synchronizer(device):
    if device.startswith('cuda'):
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def precision_condition(precision):
    """The step kind (b) with the teacher's forward in ``precision``."""
    return f'b_{precision}'


def make_steps(model, wrappers, teacher_precisions=()):
    """The three step kinds, each taking a dataloader batch; and (b) again
    with the teacher's forward in each of ``teacher_precisions``
    (``precision_condition``)."""
    from mmengine.optim import OptimWrapperDict

    from mmstructkd.models.algorithms.frozen_teacher import (
        forward_teacher, teacher_autocast)
    student_wrapper = wrappers['architecture'] if isinstance(
        wrappers, OptimWrapperDict) else wrappers

    def student_step(data):
        with student_wrapper.optim_context(model.architecture):
            losses = model.architecture(**data, mode='loss')
        loss, _ = model.parse_losses(losses)
        student_wrapper.update_params(loss)

    def teacher_forward(data, precision):
        # What run_teacher does, without the recorders' hooks; each teacher
        # in its own precision unless one is given.
        for frozen in model.frozen_teachers.values():
            with torch.no_grad(), teacher_autocast(
                    frozen.model, precision or frozen.precision):
                forward_teacher(frozen.model, frozen.forward_mode,
                                data['inputs'], data['data_samples'])

    def step_a(batch):
        student_step(model.data_preprocessor(batch, True))

    def step_b(batch, precision=None):
        data = model.data_preprocessor(batch, True)
        teacher_forward(data, precision)
        student_step(data)

    def step_c(batch):
        model.train_step(batch, wrappers)

    steps = dict(a=step_a, b=step_b, c=step_c)
    for precision in teacher_precisions:
        steps[precision_condition(precision)] = (
            lambda batch, precision=precision: step_b(batch, precision))
    return steps


def time_critic_steps(model, sync):
    """Record the duration of every critic update from now on."""
    durations = []
    critic_step = model.critic_step

    def timed_critic_step(*args, **kwargs):
        sync()
        start = time.perf_counter()
        out = critic_step(*args, **kwargs)
        sync()
        durations.append(time.perf_counter() - start)
        return out

    # An instance attribute: train_step calls self.critic_step.
    model.critic_step = timed_critic_step
    return durations


def measure_time(spec, args):
    """Interleaved (a), (b), (c) steps in this process (and (b) in each
    ``--teacher-precision``); medians, ratios."""
    sync = synchronizer(args.device)
    model, wrappers, make_batch = build(spec, args.device)
    precisions = list(getattr(args, 'teacher_precision', None) or ())
    steps = make_steps(model, wrappers, precisions)
    conditions = CONDITIONS + tuple(precision_condition(p)
                                    for p in precisions)
    adversarial = model.discriminator is not None
    critic_durations = time_critic_steps(model, sync) if adversarial else []
    times = {key: [] for key in conditions}
    critic = []
    load_before = load_average()
    for i in range(spec['warmup'] + spec['steps']):
        # Rotate the order so that none always runs first; each gets the
        # same batch.
        shift = i % len(conditions)
        order = conditions[shift:] + conditions[:shift]
        for key in order:
            batch = make_batch(seed=i)
            num_critic = len(critic_durations)
            sync()
            start = time.perf_counter()
            steps[key](batch)
            sync()
            elapsed = time.perf_counter() - start
            if i < spec['warmup']:
                continue
            times[key].append(elapsed)
            if adversarial and key == 'c':
                ran = len(critic_durations) > num_critic
                critic.append(critic_durations[-1] if ran else 0.0)
    med = {key: statistics.median(times[key]) for key in CONDITIONS}
    result = dict(
        teacher_forward_mode=', '.join(
            f.forward_mode for f in model.frozen_teachers.values()),
        teacher_precision=', '.join(
            f.precision for f in model.frozen_teachers.values()),
        adversarial=adversarial,
        times_s={key: times[key] for key in CONDITIONS},
        median_s=med,
        c_over_b=med['c'] / med['b'],
        b_over_a=med['b'] / med['a'],
        load_before=load_before,
        load_after=load_average())
    if spec['target'] is not None:
        result['meets_target'] = result['c_over_b'] <= spec['target']
    if precisions:
        result['teacher_precisions'] = teacher_precision_costs(
            times, precisions)
    if adversarial:
        without = [c - k for c, k in zip(times['c'], critic)]
        result.update(
            critic_times_s=critic,
            critic_median_s=statistics.median(critic),
            c_without_critic_median_s=statistics.median(without))
        result['critic_over_b'] = result['critic_median_s'] / med['b']
        result['c_without_critic_over_b'] = (
            result['c_without_critic_median_s'] / med['b'])
    return result



def teacher_precision_costs(times, precisions):
    """Per precision: the times of (b) with the teacher's forward in it,
    their median, and what the teacher's forward costs, (b) - (a) (median
    of the per-step differences: the two ran on the same batch in the same
    round), also relative to the first precision listed."""
    costs = {}
    for precision in precisions:
        b_times = times[precision_condition(precision)]
        costs[precision] = dict(
            times_s=b_times,
            median_s=statistics.median(b_times),
            teacher_forward_s=statistics.median(
                b - a for b, a in zip(b_times, times['a'])))
    first = costs[precisions[0]]['teacher_forward_s']
    for precision in precisions:
        cost = costs[precision]['teacher_forward_s']
        costs[precision]['teacher_forward_over_first'] = (
            cost / first if first > 0 else None)
    return costs
