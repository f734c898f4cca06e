"""What distillation costs per training step, beyond the teacher itself.

For each distillation config, on random inputs and random weights, times
three steps interleaved in one process (so machine load affects them alike):

(a) the student alone: its own loss, backward and optimizer step;
(b) (a) plus a bare teacher forward under ``no_grad``, as far as the
    algorithm runs it (``teacher_forward_mode``): the physical floor of any
    distillation;
(c) the full ``SingleTeacherDistill.train_step`` (recorders, connectors,
    distillation losses, and the adversarial critic step when configured).

Reports medians and (c)/(b), the overhead of our machinery and losses.
Segmentation configs only so far.

Usage:
    python tools/benchmark_overhead.py [CONFIG ...] [--size 96] [--batch 8]
        [--steps 20] [--threads N] [--out benchmarks/results/overhead.json]
"""
import argparse
import json
import os.path as osp
import platform
import statistics
import sys
import time

import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)
TOY = osp.join(REPO_ROOT, 'configs', 'toy')
DEFAULT_CONFIGS = [
    osp.join(TOY, name) for name in (
        'cwd_logits_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py',
        'skd_pi_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py',
        'skd_pi-pa-fullres_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_'
        'toyscenes.py',
        'skd_pi-pa-ho_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_'
        'toyscenes.py',
        'bcd_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py')
]


def seg_batch(batch, size, num_classes, seed):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(batch):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.randint(
            0, num_classes, (1, size, size), generator=gen))
        sample.set_metainfo(dict(img_shape=(size, size),
                                 ori_shape=(size, size),
                                 pad_shape=(size, size)))
        samples.append(sample)
    inputs = [torch.randint(0, 256, (3, size, size), dtype=torch.uint8,
                            generator=gen) for _ in range(batch)]
    return dict(inputs=inputs, data_samples=samples)


def build(config):
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.optim import OptimWrapperDict

    import mmstructkd  # noqa: F401
    from mmstructkd.registry import MODELS
    cfg = Config.fromfile(config)
    cfg.model.teacher_ckpt = None
    model = MODELS.build(cfg.model).train()
    wrappers = build_optim_wrapper(model, cfg.optim_wrapper)
    student_wrapper = wrappers['architecture'] if isinstance(
        wrappers, OptimWrapperDict) else wrappers
    return model, wrappers, student_wrapper


def time_it(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(config, args):
    model, wrappers, student_wrapper = build(config)
    num_classes = model.architecture.decode_head.num_classes

    def student_step(data):
        losses = model.architecture(**data, mode='loss')
        loss, _ = model.parse_losses(losses)
        student_wrapper.update_params(loss)

    def teacher_forward(data):
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

    steps = dict(a=step_a, b=step_b, c=step_c)
    times = {k: [] for k in steps}
    for i in range(args.warmup + args.steps):
        batch = seg_batch(args.batch, args.size, num_classes, seed=i)
        for key, fn in steps.items():
            elapsed = time_it(lambda: fn(batch))
            if i >= args.warmup:
                times[key].append(elapsed)
    med = {k: statistics.median(v) for k, v in times.items()}
    return dict(
        config=osp.basename(config),
        teacher_forward_mode=model.teacher_forward_mode,
        adversarial=model.discriminator is not None,
        median_s=med,
        c_over_b=med['c'] / med['b'],
        b_over_a=med['b'] / med['a'])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='*', default=DEFAULT_CONFIGS)
    parser.add_argument('--size', type=int, default=96)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--steps', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument(
        '--out', default=osp.join(REPO_ROOT, 'benchmarks', 'results',
                                  'overhead.json'))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [measure(c, args) for c in args.configs]
    lines = [
        f'Per-step medians over {args.steps} interleaved steps, batch '
        f'{args.batch} of {args.size}x{args.size}, CPU, '
        f'{torch.get_num_threads()} threads, random weights.', '',
        '| config | teacher runs | (a) student | (b) + teacher fwd | '
        '(c) distillation step | (c)/(b) |', '|---|---|---|---|---|---|'
    ]
    for r in rows:
        m = r['median_s']
        lines.append(
            f'| {r["config"]} | {r["teacher_forward_mode"]} | '
            f'{m["a"] * 1e3:.1f} ms | {m["b"] * 1e3:.1f} ms | '
            f'{m["c"] * 1e3:.1f} ms | {r["c_over_b"]:.3f} |')
    table = '\n'.join(lines)
    print(table)
    if args.out:
        info = dict(platform=platform.platform(), torch=torch.__version__,
                    threads=torch.get_num_threads(), size=args.size,
                    batch=args.batch, steps=args.steps,
                    command=' '.join(['tools/benchmark_overhead.py'] +
                                     (argv if argv is not None else
                                      sys.argv[1:])))
        with open(args.out, 'w') as f:
            json.dump(dict(info=info, rows=rows), f, indent=2)
        with open(osp.splitext(args.out)[0] + '.md', 'w') as f:
            f.write(table + '\n')
    return rows


if __name__ == '__main__':
    main()
