"""What running the teacher only as far as its FPN saves in a training step.

When every teacher recorder is in the backbone or neck (FPN distillation),
``SingleTeacherDistill`` runs only ``teacher.extract_feat``
(``teacher_forward_mode='feat'``) instead of the teacher's head as well
(``'tensor'``). This tool builds a detection distillation config once, with
random weights (no checkpoint, no download), and times whole training steps
(``train_step``: teacher forward, student loss forward and backward,
optimizer update) and the teacher's forward alone, in both modes.

The two modes are interleaved step by step, in alternating order, so a
machine shared with other work slows both alike; medians are reported, and
the saving is the median of the per-step differences (tensor - feat) of
such pairs. The first ``--warmup`` steps of each mode (one-off kernel
set-up) are dropped. Timings on a shared machine stay noisy: the teacher's
forward FLOPs in each mode (``torch.utils.flop_counter``, one batch) are
reported too, and do not depend on the load; ``--threads 1`` gives steadier
timings there. ``--steps 0`` reports the FLOPs only (e.g. a model-zoo
config at full resolution on a CPU).

Examples::

    python tools/benchmark_teacher_forward.py          # toy CWD-FPN, 64x64
    python tools/benchmark_teacher_forward.py --steps 20 --batch-size 8
    python tools/benchmark_teacher_forward.py \\
        configs/cwd/cwd_fpn_retinanet-r101_retinanet-r50_8xb2-1x_coco.py \\
        --input-size 800 1333 --batch-size 2 --steps 0
"""
import argparse
import json
import os
import os.path as osp
import statistics
import time

from .config_lists import TEACHER_FORWARD_CONFIG as DEFAULT_CONFIG
from .machine import use_threads
from .random_batches import det_batch

# Sides of the random boxes, as fractions of the picture's.
BOX_SCALE = (0.05, 0.3)
MODES = ('feat', 'tensor')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?', default=DEFAULT_CONFIG,
                        help='detection distillation config (default: the '
                        'toy CWD-FPN RetinaNet config)')
    parser.add_argument('--steps', type=int, default=20,
                        help='timed training steps per mode')
    parser.add_argument('--warmup', type=int, default=3,
                        help='untimed steps per mode first')
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--input-size', type=int, nargs=2, default=(64, 64),
                        metavar=('H', 'W'))
    parser.add_argument('--boxes', type=int, default=4,
                        help='random ground-truth boxes per image')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch\'s choice)')
    parser.add_argument('--out', help='also write the results as JSON here')
    return parser.parse_args(argv)


def build_algorithm(config_path, device):
    """The config's algorithm with random weights and its optimizer."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    import mmstructkd  # noqa: F401
    from mmstructkd.registry import MODELS
    cfg = Config.fromfile(config_path)
    cfg.model.teacher_ckpt = None
    for role in ('architecture', 'teacher'):
        if 'cfg_path' in cfg.model[role]:
            options = dict(cfg.model[role].get('cfg_options') or {})
            options['model.backbone.init_cfg'] = None  # no ImageNet download
            cfg.model[role]['cfg_options'] = options
    model = MODELS.build(cfg.model).to(device)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    model.train()
    return model, wrapper


def num_classes_of(detector):
    for head in ('bbox_head', 'roi_head'):
        module = getattr(detector, head, None)
        if module is not None:
            return getattr(module, 'num_classes', None) or \
                module.bbox_head.num_classes
    return 1


def synchronize(device):
    import torch
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def time_modes(model, wrapper, batches, args):
    """Interleaved timings: {mode: {'step': [...], 'teacher': [...]}}."""
    times = {mode: dict(step=[], teacher=[]) for mode in MODES}
    for i in range(args.warmup + args.steps if args.steps > 0 else 0):
        batch = batches[i % len(batches)]
        # Alternate the order, so neither mode always runs first.
        for mode in (MODES if i % 2 == 0 else MODES[::-1]):
            model.teacher_forward_mode = mode
            synchronize(args.device)
            start = time.perf_counter()
            model.train_step(batch, wrapper)
            synchronize(args.device)
            step = time.perf_counter() - start

            data = model.data_preprocessor(batch, True)
            synchronize(args.device)
            start = time.perf_counter()
            model.run_teacher(data['inputs'], data['data_samples'])
            synchronize(args.device)
            teacher = time.perf_counter() - start
            model.distiller.reset_records()
            if i >= args.warmup:
                times[mode]['step'].append(step)
                times[mode]['teacher'].append(teacher)
    return times


def teacher_flops(model, batch):
    """Floating-point operations of one teacher forward, per mode."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    data = model.data_preprocessor(batch, True)
    flops = {}
    for mode in MODES:
        model.teacher_forward_mode = mode
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model.run_teacher(data['inputs'], data['data_samples'])
        model.distiller.reset_records()
        flops[mode] = counter.get_total_flops()
    return flops


def summarize(times, flops):
    rows = {mode: dict(teacher_gflops=flops[mode] / 1e9) for mode in MODES}
    if not times['feat']['step']:
        return rows
    for mode in MODES:
        for key, values in times[mode].items():
            rows[mode][key] = dict(
                median_ms=1e3 * statistics.median(values),
                min_ms=1e3 * min(values),
                max_ms=1e3 * max(values))
    # Paired differences: both modes of a pair ran back to back.
    rows['saving'] = {
        key: dict(median_ms=1e3 * statistics.median(
            t - f for t, f in zip(times['tensor'][key], times['feat'][key])))
        for key in ('step', 'teacher')
    }
    rows['saving']['teacher_gflops'] = (flops['tensor'] -
                                        flops['feat']) / 1e9
    return rows


def _ms(row, key):
    return f"{row[key]['median_ms']:.1f}" if key in row else '-'


def format_table(rows, header):
    lines = [
        header, '',
        '| teacher_forward_mode | train step, median (ms) | '
        'teacher forward, median (ms) | teacher forward (GFLOPs) |',
        '|---|---:|---:|---:|'
    ]
    for mode, what in (('feat', 'backbone + neck'),
                       ('tensor', 'backbone + neck + head')):
        row = rows[mode]
        lines.append(f"| `'{mode}'` ({what}) | {_ms(row, 'step')} | "
                     f"{_ms(row, 'teacher')} | "
                     f"{row['teacher_gflops']:.2f} |")
    tensor = rows['tensor']
    gflops = tensor['teacher_gflops'] - rows['feat']['teacher_gflops']
    cells = []
    for key in ('step', 'teacher'):
        if 'saving' in rows:
            saved = rows['saving'][key]['median_ms']
            cells.append(f"{saved:.1f} "
                         f"({100 * saved / tensor[key]['median_ms']:.0f}%)")
        else:
            cells.append('-')
    cells.append(f"{gflops:.2f} "
                 f"({100 * gflops / tensor['teacher_gflops']:.0f}%)")
    lines.append('| saving (paired median) | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    import torch
    use_threads(args.threads)
    torch.manual_seed(0)
    model, wrapper = build_algorithm(args.config, args.device)
    height, width = args.input_size
    num_classes = num_classes_of(model.architecture)
    batches = [
        det_batch(args.batch_size, (height, width), num_classes, seed,
                  num_boxes=args.boxes, box_scale=BOX_SCALE)
        for seed in range(4)
    ]
    load_before = os.getloadavg()[0]
    times = time_modes(model, wrapper, batches, args) if args.steps > 0 \
        else {mode: dict(step=[], teacher=[]) for mode in MODES}
    load_after = os.getloadavg()[0]
    # Counted after the timings, so its tracing cannot affect them.
    flops = teacher_flops(model, batches[0])
    rows = summarize(times, flops)
    header = (
        f'{osp.basename(args.config)}: batch {args.batch_size} x '
        f'{height}x{width}, {args.steps} steps per mode (after '
        f'{args.warmup} warm-up), device {args.device}, '
        f'{torch.get_num_threads()} threads, load average '
        f'{load_before:.1f} -> {load_after:.1f}')
    print(format_table(rows, header))
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(dict(config=args.config, batch_size=args.batch_size,
                           input_size=[height, width], steps=args.steps,
                           warmup=args.warmup, device=args.device,
                           threads=torch.get_num_threads(),
                           load_average=[load_before, load_after],
                           results=rows, raw_seconds=times), f, indent=1)
    return rows

