"""The main job: distil the toy teacher into the toy student and compare.

Steps (each reuses what an earlier run left, when its inputs are unchanged):

1. generate the bundled toy data (``tools/make_toy_data.py``);
2. train the teacher, or reuse the cached ``work_dirs/toy/teacher.pth``;
3. train the plain student and each distilled student (CWD on the logits,
   SKD pixel-wise + pair-wise + holistic) for several seeds, all with the
   same schedule, through ``tools/train.py`` (mmengine's progress and ETA are
   shown);
4. print a table (mIoU mean and spread over seeds, training time per
   iteration, parameters and FLOPs of teacher and student) and write it, the
   raw numbers and a PNG chart under ``work_dirs/demo/``.

Everything printed comes from this run's logs.

Usage:
    python tools/demo.py [--iters 300] [--seeds 0 1 2] [--teacher-iters 1200]
"""
import argparse
import json
import os
import os.path as osp
import shutil
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from .config_lists import (REPO_ROOT, SEG_PAIR, TOY_SEG_STUDENT,
                           TOY_SEG_TEACHER, TOY_TEACHER_CKPT, toy_config)
from .processes import check_python
from .teacher_cache import (teacher_split_options, toy_data_stamp,
                            train_cached)
from .toy_training import schedule_options, scheduler_options, train
from .training_logs import final_metrics

METHODS = {
    'student (no KD)': TOY_SEG_STUDENT,
    'CWD logits': toy_config('cwd_logits_' + SEG_PAIR),
    'SKD pi+pa+ho': toy_config('skd_pi-pa-ho_' + SEG_PAIR),
}


def complexity(config, size):
    """Parameters and FLOPs of the model of a plain config."""
    import torch
    from mmengine.analysis import get_model_complexity_info

    import mmstructkd  # noqa: F401
    from mmstructkd.models.task_models import build_task_model
    model = build_task_model(dict(cfg_path=config), 'model').eval()
    inputs = torch.zeros(1, 3, size, size)
    with torch.no_grad():
        info = get_model_complexity_info(
            model, inputs=(inputs, ), show_table=False, show_arch=False)
    return dict(params=info['params'], flops=info['flops'])


def train_teacher(args, out_dir):
    return train_cached(
        TOY_SEG_TEACHER, TOY_TEACHER_CKPT, args.teacher_iters,
        args.data_stamp, osp.join(out_dir, 'teacher'),
        log=lambda msg: print(f'[demo] {msg}'),
        options=teacher_split_options('seg'))


def chart(results, teacher, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    names = list(results)
    means = [results[n]['mIoU_mean'] for n in names]
    stds = [results[n]['mIoU_std'] for n in names]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    colors = ['#8c8c8c'] + ['#3b75af'] * (len(names) - 1)
    ax.bar(names, means, yerr=stds, capsize=5, color=colors)
    ax.axhline(teacher['mIoU'], color='#c44e52', linestyle='--',
               label=f'teacher {teacher["mIoU"]:.1f}')
    for i, (m, s) in enumerate(zip(means, stds)):
        ax.text(i, m + s + 0.3, f'{m:.1f}', ha='center', fontsize=9)
    low = min(means + [teacher['mIoU']]) - 10
    ax.set_ylim(max(low, 0), max(means + [teacher['mIoU']]) + 4)
    ax.set_ylabel('val mIoU (%)')
    ax.set_title('Toy scenes: student mIoU, mean and std over seeds')
    ax.legend(loc='lower right')
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--iters', type=int, default=300,
                        help='training iterations of each student')
    parser.add_argument('--teacher-iters', type=int, default=1200)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--jobs', type=int, default=2,
                        help='students trained at a time')
    parser.add_argument('--out', default=osp.join(REPO_ROOT, 'work_dirs',
                                                  'demo'))
    args = parser.parse_args(argv)
    start = time.time()
    os.makedirs(args.out, exist_ok=True)

    print('[demo] toy data')
    check_python(['tools/make_toy_data.py'], echo_prefix='    ')
    args.data_stamp = toy_data_stamp()

    teacher = train_teacher(args, args.out)
    teacher_ckpt = TOY_TEACHER_CKPT

    # Students train --jobs at a time, each on cpu_count / jobs threads:
    # these small models use two single-threaded processes better than one
    # process with two threads.
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    jobs = [(name, config, seed) for name, config in METHODS.items()
            for seed in args.seeds]

    def train_student(job):
        name, config, seed = job
        tag = name.split(' ')[0].lower() + f'_seed{seed}'
        work_dir = osp.join(args.out, tag)
        shutil.rmtree(work_dir, ignore_errors=True)
        print(f'[demo] {name}, seed {seed}: {args.iters} iterations',
              flush=True)
        options = schedule_options(args.iters, seed) + \
            scheduler_options(config, args.iters)
        if config != TOY_SEG_STUDENT:
            options.append(f'model.teacher_ckpt={teacher_ckpt}')
        train(config, work_dir, options, echo_prefix=f'    [{tag}] ',
              threads=threads)
        return final_metrics(work_dir)

    with ThreadPoolExecutor(args.jobs) as pool:
        metrics = list(pool.map(train_student, jobs))
    results = {}
    for name in METHODS:
        runs = [m for (job_name, _, _), m in zip(jobs, metrics)
                if job_name == name]
        mious = [r['mIoU'] for r in runs]
        results[name] = dict(
            runs=runs,
            mIoU_mean=statistics.mean(mious),
            mIoU_std=statistics.stdev(mious) if len(mious) > 1 else 0.0,
            time_per_iter=statistics.median(r['time_per_iter']
                                            for r in runs))

    size = 96
    cost = dict(teacher=complexity(TOY_SEG_TEACHER, size),
                student=complexity(TOY_SEG_STUDENT, size))
    lines = [
        f'Toy scenes, {len(args.seeds)} seeds x {args.iters} iterations per '
        f'student (batch 8), val mIoU (%); students trained {args.jobs} at a '
        f'time with {threads} thread(s) each (their s/iter), the teacher '
        'alone', '',
        '| model | mIoU mean | std | s/iter (train) | params | FLOPs '
        f'({size}x{size}) |', '|---|---|---|---|---|---|',
        f'| teacher (PSPNet R34-thin32) | {teacher["mIoU"]:.2f} | - | '
        f'{teacher["time_per_iter"]:.3f} | '
        f'{cost["teacher"]["params"] / 1e6:.2f}M | '
        f'{cost["teacher"]["flops"] / 1e9:.3f}G |'
    ]
    for name, r in results.items():
        lines.append(
            f'| {name} | {r["mIoU_mean"]:.2f} | {r["mIoU_std"]:.2f} | '
            f'{r["time_per_iter"]:.3f} | '
            f'{cost["student"]["params"] / 1e6:.2f}M | '
            f'{cost["student"]["flops"] / 1e9:.3f}G |')
    table = '\n'.join(lines)
    print('\n' + table + '\n')
    with open(osp.join(args.out, 'results.md'), 'w') as f:
        f.write(table + '\n')
    with open(osp.join(args.out, 'results.json'), 'w') as f:
        json.dump(dict(teacher=teacher, students=results, cost=cost,
                       iters=args.iters, seeds=args.seeds), f, indent=2)
    chart(results, teacher, osp.join(args.out, 'miou.png'))
    print(f'[demo] table, json and chart in {args.out} '
          f'({(time.time() - start) / 60:.1f} min)')

