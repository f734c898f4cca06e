#!/usr/bin/env python
"""What distillation costs per training step, beyond the teacher itself.

For each distillation config, with random weights on random inputs (no
checkpoint is loaded: ``teacher_ckpt`` is set to None, so model-zoo URLs are
never downloaded), three kinds of training step are compared:

(a) the student alone: its own loss, backward and optimizer step;
(b) (a) plus a bare teacher forward under ``no_grad``, as far as the
    algorithm runs it (``teacher_forward_mode``): the physical floor of any
    distillation;
(c) the full ``SingleTeacherDistill.train_step`` (recorders, connectors,
    distillation losses, and the adversarial critic step when configured).

(c)/(b) is the overhead of our machinery and losses.

Time: the three steps are interleaved in one process, in an order rotating
from step to step, so machine load and cache state affect them alike;
medians over ``--steps`` steps after ``--warmup``. With an adversarial
critic, its update (``critic_step``, part of (c)) is timed on its own in the
same steps and reported separately, with (c) minus the critic step over (b).

Memory: peak is process-wide, so each of (a), (b), (c) runs in its own fresh
process (forked from a server that has only imported the libraries): build
the models and the inputs, then ``--memory-steps`` steps (the first
allocates the optimizer state, the second runs with it); reported is the
peak beyond what was in use once the models and inputs were built (peak RSS
on CPU, ``max_memory_allocated`` on CUDA; see ``tools/benchmark_utils.py``),
and (c)/(b) of those peaks. These processes never run while steps are
timed.

Input sizes (``--size H W`` overrides them all):

* toy configs: their own image size (segmentation 96x96, detection 64x64),
  batch = the config's (8);
* model-zoo configs, ``--device cuda``: the config's training size
  (Cityscapes crops 512x1024 or 512x512; COCO scale 800x1333), batch = the
  config's per-GPU batch;
* model-zoo configs on CPU: half each side of the Cityscapes crop (256x512,
  256x256) and 512x512 for COCO, 5 steps after 1 warm-up, because
  PSPNet-R101-d8 alone is ~2 TFLOPs per 512x1024 forward; batch 1 for
  detection and 2 for segmentation (PSPNet's pyramid pooling has a
  BatchNorm on 1x1 maps, which cannot train on a batch of one).

Results: ``--out`` JSON (device, torch, threads, load averages at start and
end, per-config sizes, per-step times, medians, memory, ratios) and a
Markdown table next to it (``.md``). Defaults:
``benchmarks/results/overhead.json`` (``--set toy``),
``overhead_model-zoo.json``, ``overhead_all.json``, with ``_cuda`` added on
CUDA; with ``--configs`` nothing is written unless ``--out`` is given.

Examples::

    python tools/benchmark_overhead.py                    # toy set, CPU
    python tools/benchmark_overhead.py --set model-zoo    # CPU, small sizes
    python tools/benchmark_overhead.py --set model-zoo --device cuda
    python tools/benchmark_overhead.py --device cuda \\
        --configs configs/cwd/cwd_logits_pspnet-r101-d8_pspnet-r18-d8_*.py \\
        --out benchmarks/results/overhead_pspnet_cuda.json
    python tools/benchmark_overhead.py --configs CONFIG --size 64 64 \\
        --steps 2 --warmup 0 --out /tmp/overhead.json
"""
import argparse
import datetime
import json
import os
import os.path as osp
import statistics
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)
sys.path.insert(0, osp.join(REPO_ROOT, 'tools'))
from benchmark_utils import (MemoryMeter, is_out_of_memory,  # noqa: E402
                             load_average, machine_info)

CONFIGS = osp.join(REPO_ROOT, 'configs')
TOY = osp.join(CONFIGS, 'toy')
TOY_CONFIGS = [
    osp.join(TOY, name) for name in (
        'cwd_logits_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py',
        'skd_pi_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py',
        'skd_pi-pa-fullres_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_'
        'toyscenes.py',
        'skd_pi-pa-ho_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_'
        'toyscenes.py',
        'bcd_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py',
        'cwd_fpn_retinanet-r34-thin32_retinanet-r18-thin16_1xb8-2k_'
        'toyscenes-64x64.py',
        'ssim_fpn_faster-rcnn-r34-thin32_faster-rcnn-r18-thin16_1xb8-2k_'
        'toyscenes-64x64.py',
        'skd_pa-fpn_retinanet-r34-thin32_retinanet-r18-thin16_1xb8-2k_'
        'toyscenes-64x64.py',
        'bcd_retinanet-r34-thin32_retinanet-r18-thin16_1xb8-2k_'
        'toyscenes-64x64.py')
]
MODEL_ZOO_CONFIGS = [
    osp.join(CONFIGS, path) for path in (
        'cwd/cwd_logits_pspnet-r101-d8_pspnet-r18-d8_4xb2-80k_'
        'cityscapes-512x1024.py',
        'skd/skd_pi_pspnet-r101-d8_pspnet-r18-d8_4xb2-40k_'
        'cityscapes-512x512.py',
        'skd/skd_pi-pa-fullres_pspnet-r101-d8_pspnet-r18-d8_4xb2-40k_'
        'cityscapes-512x512.py',
        'skd/skd_pi-pa-ho_pspnet-r101-d8_pspnet-r18-d8_4xb2-40k_'
        'cityscapes-512x512.py',
        'ssim/ssim_fpn_faster-rcnn-r101_faster-rcnn-r50_8xb2-1x_coco.py')
]
SETS = {
    'toy': TOY_CONFIGS,
    'model-zoo': MODEL_ZOO_CONFIGS,
    'all': TOY_CONFIGS + MODEL_ZOO_CONFIGS
}
DEFAULT_OUT_NAMES = {
    'toy': 'overhead',
    'model-zoo': 'overhead_model-zoo',
    'all': 'overhead_all'
}
# The toy segmentation pictures are used uncropped at make_toy_data.py's
# default side.
TOY_SEG_SIZE = 96
# Model-zoo sizes on CPU: a quarter of a Cityscapes crop's pixels, and a
# common COCO picture size.
CPU_SEG_SCALE = 0.5
CPU_COCO_SIZE = (512, 512)
# Smallest training batch per task on CPU: PSPNet's 1x1 pyramid-pooling
# branch has a BatchNorm, which cannot train on one value per channel.
CPU_MODEL_ZOO_BATCH = dict(seg=2, det=1)
# Issue #7's targets for (c)/(b), by config name prefix (first match wins).
# No target for BCD, and the adversarial configs report the critic apart.
TARGETS = (('skd_pi-pa-fullres_', 1.10), ('skd_pa-fpn_', 1.10),
           ('ssim_', 1.10), ('cwd_', 1.05), ('skd_pi_', 1.05))
CONDITIONS = ('a', 'b', 'c')


# --------------------------------------------------------------- sizes ---
def crop_size(cfg, task):
    """[H, W] the config trains at: the crop (segmentation) or the Resize
    scale (detection; mmdet writes scales as (w, h))."""
    if task == 'seg':
        return list(cfg.get('crop_size') or (TOY_SEG_SIZE, TOY_SEG_SIZE))
    for transform in cfg.train_pipeline:
        if transform['type'].endswith('Resize') and 'scale' in transform:
            width, height = transform['scale']
            return [height, width]
    raise ValueError('no Resize with a scale in train_pipeline')


def target_of(name):
    for prefix, target in TARGETS:
        if name.startswith(prefix):
            return target
    return None


def resolve(config, args):
    """What one config is measured with: task, size, batch, steps."""
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    task = 'det' if cfg.get('default_scope') == 'mmdet' else 'seg'
    toy = osp.abspath(config).startswith(TOY + osp.sep)
    full_size = toy or args.device == 'cuda'
    crop = crop_size(cfg, task)
    if args.size:
        size = list(args.size)
    elif full_size:
        size = crop
    elif task == 'seg':
        size = [int(side * CPU_SEG_SCALE) for side in crop]
    else:
        size = list(CPU_COCO_SIZE)
    name = osp.splitext(osp.basename(config))[0]
    return dict(
        config=osp.relpath(osp.abspath(config), REPO_ROOT),
        name=name,
        set='toy' if toy else 'model-zoo',
        task=task,
        crop_size=crop,
        size=size,
        batch=args.batch or (cfg.train_dataloader.batch_size
                             if full_size else CPU_MODEL_ZOO_BATCH[task]),
        steps=args.steps or (20 if full_size else 5),
        warmup=args.warmup if args.warmup is not None else
        (3 if full_size else 1),
        target=target_of(name))


# -------------------------------------------------------------- inputs ---
def seg_batch(batch, size, num_classes, seed):
    """Random uint8 pictures and label maps, as the dataloader gives them."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    height, width = size
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(batch):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.randint(
            0, num_classes, (1, height, width), generator=gen))
        sample.set_metainfo(dict(img_shape=(height, width),
                                 ori_shape=(height, width),
                                 pad_shape=(height, width)))
        samples.append(sample)
    inputs = [torch.randint(0, 256, (3, height, width), dtype=torch.uint8,
                            generator=gen) for _ in range(batch)]
    return dict(inputs=inputs, data_samples=samples)


def det_batch(batch, size, num_classes, seed, with_masks=False,
              num_boxes=5):
    """Random uint8 pictures with a few random boxes each (box masks too
    for instance segmentation)."""
    import numpy as np
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    height, width = size
    gen = torch.Generator().manual_seed(seed)
    extent = torch.tensor([width, height], dtype=torch.float32)
    samples = []
    for _ in range(batch):
        # Boxes from 1/8 to 1/2 of the picture, inside it.
        wh = extent * (0.125 + 0.375 * torch.rand(num_boxes, 2,
                                                  generator=gen))
        corner = (extent - wh) * torch.rand(num_boxes, 2, generator=gen)
        boxes = torch.cat([corner, corner + wh], dim=1)
        instances = InstanceData(
            bboxes=boxes,
            labels=torch.randint(0, num_classes, (num_boxes, ),
                                 generator=gen))
        if with_masks:
            masks = np.zeros((num_boxes, height, width), dtype=np.uint8)
            for i, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
                masks[i, y1:y2, x1:x2] = 1
            instances.masks = BitmapMasks(masks, height, width)
        sample = DetDataSample()
        sample.gt_instances = instances
        sample.set_metainfo(dict(img_shape=(height, width),
                                 ori_shape=(height, width),
                                 scale_factor=(1.0, 1.0)))
        samples.append(sample)
    inputs = [torch.randint(0, 256, (3, height, width), dtype=torch.uint8,
                            generator=gen) for _ in range(batch)]
    return dict(inputs=inputs, data_samples=samples)


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
    maker."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    import mmstructkd  # noqa: F401
    from mmstructkd.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO_ROOT, spec['config']))
    # Random weights: nothing is loaded or downloaded (building a model
    # does not run init_weights, so pretrained backbones are not fetched
    # either).
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


def make_steps(model, wrappers):
    """The three step kinds, each taking a dataloader batch."""
    from mmengine.optim import OptimWrapperDict
    student_wrapper = wrappers['architecture'] if isinstance(
        wrappers, OptimWrapperDict) else wrappers

    def student_step(data):
        with student_wrapper.optim_context(model.architecture):
            losses = model.architecture(**data, mode='loss')
        loss, _ = model.parse_losses(losses)
        student_wrapper.update_params(loss)

    def teacher_forward(data):
        # What run_teacher does, without the recorders' hooks.
        with torch.no_grad():
            if model.teacher_forward_mode == 'feat':
                model.teacher.extract_feat(data['inputs'])
            else:
                model.teacher(**data, mode=model.teacher_forward_mode)

    def step_a(batch):
        student_step(model.data_preprocessor(batch, True))

    def step_b(batch):
        data = model.data_preprocessor(batch, True)
        teacher_forward(data)
        student_step(data)

    def step_c(batch):
        model.train_step(batch, wrappers)

    return dict(a=step_a, b=step_b, c=step_c)


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
    """Interleaved (a), (b), (c) steps in this process; medians, ratios."""
    sync = synchronizer(args.device)
    model, wrappers, make_batch = build(spec, args.device)
    steps = make_steps(model, wrappers)
    adversarial = model.discriminator is not None
    critic_durations = time_critic_steps(model, sync) if adversarial else []
    times = {key: [] for key in CONDITIONS}
    critic = []
    load_before = load_average()
    for i in range(spec['warmup'] + spec['steps']):
        # Rotate the order so that none always runs first; each gets the
        # same batch.
        order = CONDITIONS[i % 3:] + CONDITIONS[:i % 3]
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
    med = {key: statistics.median(v) for key, v in times.items()}
    result = dict(
        teacher_forward_mode=model.teacher_forward_mode,
        adversarial=adversarial,
        times_s=times,
        median_s=med,
        c_over_b=med['c'] / med['b'],
        b_over_a=med['b'] / med['a'],
        load_before=load_before,
        load_after=load_average())
    if spec['target'] is not None:
        result['meets_target'] = result['c_over_b'] <= spec['target']
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


def tensor_bytes(tensors):
    return sum(t.numel() * t.element_size() for t in tensors)


def measure_memory(spec, condition, device, num_steps):
    """Peak memory of ``num_steps`` steps of one condition, beyond the
    models and inputs (in a fresh process: see the module docstring)."""
    model, wrappers, make_batch = build(spec, device)
    steps = make_steps(model, wrappers)
    batches = [make_batch(seed=i) for i in range(num_steps)]
    modules = [model, model.teacher]  # the teacher is outside the tree
    models_bytes = sum(
        tensor_bytes(m.parameters()) + tensor_bytes(m.buffers())
        for m in modules)
    inputs_bytes = sum(tensor_bytes(b['inputs']) for b in batches)
    meter = MemoryMeter(device, torch)
    meter.start()
    try:
        for batch in batches:
            steps[condition](batch)
    except Exception as err:  # noqa: B902  (only out-of-memory is reported)
        if not is_out_of_memory(err, torch):
            raise
        return dict(status='skipped', reason=f'out of memory: {err}')
    mb = 2**20
    return dict(
        status='ok',
        peak_mb=meter.peak_beyond_baseline() / mb,
        baseline_mb=meter.baseline / mb,
        models_mb=models_bytes / mb,
        inputs_mb=inputs_bytes / mb,
        steps=num_steps,
        method=meter.method)


def memory_process_main(spec, condition, options, conn):
    """Body of a memory process: measure, send the result, exit."""
    try:
        if options['threads']:
            torch.set_num_threads(options['threads'])
        result = measure_memory(spec, condition, options['device'],
                                options['memory_steps'])
    except Exception as err:  # noqa: B902  (reported in the results)
        traceback.print_exc()
        result = dict(status='failed', reason=f'{type(err).__name__}: {err}')
    conn.send(result)
    conn.close()


class MemoryProcesses:
    """Fresh processes for the memory measurements.

    They are forked from a fork server that has imported torch, mmengine,
    mmseg, mmdet and mmstructkd and done nothing else: each starts in a
    fraction of a second instead of the ~6 s those imports take, holds no
    model, allocator pool or OpenMP thread pool from earlier work, and has
    its own peak-memory counters.
    """
    PRELOAD = ['torch', 'mmengine.optim', 'mmstructkd', 'mmseg.models',
               'mmdet.models']

    def __init__(self, args):
        import multiprocessing
        self.context = multiprocessing.get_context('forkserver')
        self.context.set_forkserver_preload(self.PRELOAD)
        self.args = args
        self.options = dict(device=args.device, threads=args.threads,
                            memory_steps=args.memory_steps)

    def run(self, spec, condition):
        from multiprocessing.connection import wait
        receiver, sender = self.context.Pipe(duplex=False)
        proc = self.context.Process(
            target=memory_process_main,
            args=(spec, condition, self.options, sender), daemon=True)
        proc.start()
        sender.close()
        result = None
        if receiver in wait([receiver, proc.sentinel], self.args.timeout):
            try:
                result = receiver.recv()
            except EOFError:  # it died before sending anything
                pass
        elif proc.is_alive():
            proc.kill()
            proc.join()
            return dict(status='failed',
                        reason=f'timed out after {self.args.timeout:.0f} s')
        proc.join()
        if result is not None:
            return result
        if proc.exitcode == -9:
            # The kernel's out-of-memory killer: it does not fit here.
            return dict(status='skipped',
                        reason='killed by signal 9 (out of memory?)')
        return dict(status='failed',
                    reason=f'memory process exited with {proc.exitcode}')

    def measure(self, spec):
        """Peak memory of (a), (b), (c), and (c)/(b)."""
        with ThreadPoolExecutor(max_workers=self.args.memory_jobs) as pool:
            results = list(
                pool.map(lambda c: self.run(spec, c), CONDITIONS))
        memory = dict(zip(CONDITIONS, results))
        out = dict(memory=memory)
        if all(memory[k]['status'] == 'ok' for k in 'bc') and \
                memory['b']['peak_mb'] > 0:
            out['memory_c_over_b'] = (memory['c']['peak_mb'] /
                                      memory['b']['peak_mb'])
        return out


# ------------------------------------------------------------- reports ---
def fmt_ms(seconds):
    return f'{seconds * 1e3:.1f} ms' if seconds < 10 else f'{seconds:.2f} s'


def fmt_mb(entry):
    if entry.get('status') != 'ok':
        return entry.get('status', '-')
    return f'{entry["peak_mb"]:.0f} MB'


def markdown(rows, info):
    load_start = '/'.join(f'{x:.1f}' for x in info['load_average_start'])
    load_end = '/'.join(f'{x:.1f}' for x in info['load_average_end'])
    device = info['machine'].get('gpu', info['device'])
    lines = [
        f'Overhead of the distillation step: {device}, '
        f'{info["threads"]} threads, torch {info["torch"]}, random weights. '
        f'Load average (1/5/15 min) {load_start} at the start, {load_end} '
        f'at the end. {info["date"]}, `{info["command"]}`.', '',
        'Time per training step: medians over interleaved steps (after the '
        'warm-up). (a) the student alone, (b) (a) plus a bare teacher '
        'forward under no_grad, (c) the full distillation step; with a '
        'critic, its update is part of (c) and also shown apart.', '',
        '| config | input | steps | teacher runs | (a) student | '
        '(b) + teacher fwd | (c) distillation | (c)/(b) | target | '
        'critic step | (c) - critic, /(b) |',
        '|---|---|---:|---|---:|---:|---:|---:|---|---:|---:|'
    ]
    for r in rows:
        if r['status'] != 'ok':
            reason = r['reason'].replace('|', '/')
            lines.append(f'| {r["name"]} | {r["batch"]} x {r["size"][0]}x'
                         f'{r["size"][1]} | failed: {reason} |')
            continue
        m = r['median_s']
        target = '-'
        if r['target'] is not None:
            target = f'<= {r["target"]:.2f} ' + (
                '(met)' if r['meets_target'] else '(missed)')
        critic = without = '-'
        if r['adversarial']:
            critic = fmt_ms(r['critic_median_s'])
            without = (f'{fmt_ms(r["c_without_critic_median_s"])}, '
                       f'{r["c_without_critic_over_b"]:.3f}')
        lines.append(
            f'| {r["name"]} | {r["batch"]} x {r["size"][0]}x{r["size"][1]} '
            f'| {r["steps"]} | {r["teacher_forward_mode"]} | '
            f'{fmt_ms(m["a"])} | {fmt_ms(m["b"])} | {fmt_ms(m["c"])} | '
            f'{r["c_over_b"]:.3f} | {target} | {critic} | {without} |')
    if any('memory' in r for r in rows):
        lines += [
            '', 'Peak memory beyond the built models and inputs, each step '
            f'kind in its own fresh process ({info["memory_steps"]} steps; '
            f'{info["memory_method"]}). "models" is the parameters and '
            'buffers of student, teacher, connectors and critic.', '',
            '| config | input | models | (a) student | (b) + teacher fwd | '
            '(c) distillation | (c)/(b) |',
            '|---|---|---:|---:|---:|---:|---:|'
        ]
        for r in rows:
            if 'memory' not in r:
                continue
            mem = r['memory']
            models = next((f'{mem[k]["models_mb"]:.0f} MB' for k in 'cba'
                           if mem[k].get('status') == 'ok'), '-')
            ratio = r.get('memory_c_over_b')
            lines.append(
                f'| {r["name"]} | {r["batch"]} x '
                f'{r["size"][0]}x{r["size"][1]} | {models} | '
                f'{fmt_mb(mem["a"])} | {fmt_mb(mem["b"])} | '
                f'{fmt_mb(mem["c"])} | '
                f'{"-" if ratio is None else f"{ratio:.3f}"} |')
        failed = [(r['name'], k, r['memory'][k].get('reason'))
                  for r in rows if 'memory' in r for k in CONDITIONS
                  if r['memory'][k].get('status') != 'ok']
        for name, key, reason in failed:
            lines.append(f'\n({key}) of {name}: {reason}')
    return '\n'.join(lines) + '\n'


# ---------------------------------------------------------------- main ---
def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Per-step time and peak memory of distillation vs the '
        'student alone and the student plus a bare teacher forward.')
    parser.add_argument('--set', choices=sorted(SETS), default='toy',
                        help='which configs (default: toy)')
    parser.add_argument('--configs', nargs='+',
                        help='these configs instead of a --set')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--size', type=int, nargs=2, metavar=('H', 'W'),
                        help='input size for every config (default: per '
                        'config, see the module docstring)')
    parser.add_argument('--batch', type=int,
                        help='default: the config\'s batch (toy, CUDA); on '
                        'CPU, 2 for model-zoo segmentation, 1 for detection')
    parser.add_argument('--steps', type=int,
                        help='measured steps (default 20; 5 for the model '
                        'zoo on CPU)')
    parser.add_argument('--warmup', type=int,
                        help='unmeasured steps first (default 3; 1 for the '
                        'model zoo on CPU)')
    parser.add_argument('--threads', type=int,
                        help='torch intra-op threads (default: torch\'s)')
    parser.add_argument('--memory-steps', type=int, default=2,
                        help='steps in each memory process; 0 skips the '
                        'memory measurement')
    parser.add_argument('--memory-jobs', type=int, default=1,
                        help='memory processes run at once (they measure '
                        'memory only, never while timing)')
    parser.add_argument('--timeout', type=float, default=3600,
                        help='seconds per memory process')
    parser.add_argument('--out', help='JSON output (the table goes next to '
                        'it, .md); default: see the module docstring')
    args = parser.parse_args(argv)
    for name in ('steps', 'batch', 'memory_jobs'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1')
    return args


def default_out(args):
    if args.configs:
        return None
    suffix = '_cuda' if args.device == 'cuda' else ''
    return osp.join(REPO_ROOT, 'benchmarks', 'results',
                    DEFAULT_OUT_NAMES[args.set] + suffix + '.json')


def main(argv=None):
    args = parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        sys.exit(f'--device cuda: no CUDA device is available here (torch '
                 f'{torch.__version__}, CUDA build: {torch.version.cuda}). '
                 f'Run with --device cpu, or on a machine with a GPU.')
    if args.threads:
        torch.set_num_threads(args.threads)
    command = ' '.join(['tools/benchmark_overhead.py'] +
                       list(sys.argv[1:] if argv is None else argv))
    info = dict(
        date=datetime.datetime.now().isoformat(timespec='seconds'),
        command=command,
        device=args.device,
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        memory_steps=args.memory_steps,
        memory_method=None,
        machine=machine_info(args.device),
        load_average_start=load_average())
    configs = args.configs or SETS[args.set]
    memory = MemoryProcesses(args) if args.memory_steps > 0 else None
    rows = []
    for number, config in enumerate(configs, 1):
        spec = resolve(config, args)
        print(f'[{number}/{len(configs)}] {spec["name"]}: batch '
              f'{spec["batch"]} x {spec["size"][0]}x{spec["size"][1]}, '
              f'{spec["steps"]} steps after {spec["warmup"]}',
              file=sys.stderr, flush=True)
        row = dict(spec, status='ok')
        try:
            row.update(measure_time(spec, args))
        except Exception as err:  # noqa: B902  (reported; the others run)
            traceback.print_exc()
            row.update(status='failed', reason=f'{type(err).__name__}: {err}')
            print(f'    failed: {row["reason"]}', file=sys.stderr)
            rows.append(row)
            continue
        print(f'    (a) {fmt_ms(row["median_s"]["a"])}, (b) '
              f'{fmt_ms(row["median_s"]["b"])}, (c) '
              f'{fmt_ms(row["median_s"]["c"])}, (c)/(b) '
              f'{row["c_over_b"]:.3f}', file=sys.stderr, flush=True)
        if memory is not None:
            row.update(memory.measure(spec))
            print('    memory: ' + ', '.join(
                f'({k}) {fmt_mb(row["memory"][k])}' for k in CONDITIONS),
                  file=sys.stderr, flush=True)
        rows.append(row)
    info['load_average_end'] = load_average()
    methods = [r['memory'][k]['method'] for r in rows if 'memory' in r
               for k in CONDITIONS if r['memory'][k]['status'] == 'ok']
    if methods:
        info['memory_method'] = methods[0]
    table = markdown(rows, info)
    print(table)
    out = args.out or default_out(args)
    if out:
        os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
        with open(out, 'w') as f:
            json.dump(dict(info=info, rows=rows), f, indent=2)
        with open(osp.splitext(out)[0] + '.md', 'w') as f:
            f.write(table)
        print(f'Wrote {out} and its .md', file=sys.stderr)
    return rows


if __name__ == '__main__':
    results = main()
    sys.exit(0 if all(r['status'] == 'ok' for r in results) else 1)
