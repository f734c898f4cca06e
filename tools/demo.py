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
    python tools/demo.py [--iters 500] [--seeds 0 1 2] [--teacher-iters 1500]
"""
import argparse
import glob
import hashlib
import json
import os
import os.path as osp
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOY = osp.join(REPO_ROOT, 'configs', 'toy')
TEACHER_CFG = osp.join(TOY, 'pspnet_r34-d8-thin32_1xb8-2k_toyscenes.py')
STUDENT_CFG = osp.join(TOY, 'pspnet_r18-d8-thin16_1xb8-2k_toyscenes.py')
TEACHER_CKPT = osp.join(REPO_ROOT, 'work_dirs', 'toy', 'teacher.pth')
METHODS = {
    'student (no KD)': STUDENT_CFG,
    'CWD logits': osp.join(
        TOY, 'cwd_logits_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_'
        'toyscenes.py'),
    'SKD pi+pa+ho': osp.join(
        TOY, 'skd_pi-pa-ho_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_'
        'toyscenes.py'),
}


def run(cmd, prefix='    ', threads=None):
    """Run a command from the repo root, echoing mmengine's log lines
    (progress and ETA) with ``prefix``; ``threads`` caps torch's threads."""
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO_ROOT + os.pathsep + env.get('PYTHONPATH', '')
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    tail = []
    for line in proc.stdout:
        tail = (tail + [line])[-80:]
        if ' - mmengine - INFO - Iter(' in line or 'mIoU' in line and \
                'Iter(val)' in line:
            print(prefix + line.split(' - mmengine - INFO - ')[-1].rstrip(),
                  flush=True)
    if proc.wait() != 0:
        sys.stdout.write(''.join(tail))
        raise SystemExit(f'command failed: {" ".join(cmd)}')


def schedule_options(iters, seed, val_interval=None):
    val_interval = val_interval or iters
    return [
        f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={val_interval}',
        f'default_hooks.checkpoint.interval={iters}',
        f'default_hooks.logger.interval={max(iters // 10, 1)}',
        f'randomness.seed={seed}', 'randomness.deterministic=False',
    ]


def scheduler_options(config, iters):
    """End the poly schedule(s) at ``iters`` whatever their layout."""
    from mmengine.config import Config
    sched = Config.fromfile(config).param_scheduler
    if isinstance(sched, dict):
        return [f'param_scheduler.{k}.0.end={iters}' for k in sched]
    return [f'param_scheduler.0.end={iters}']


def read_scalars(work_dir):
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                      'scalars.json')))
    with open(files[-1]) as f:
        return [json.loads(line) for line in f]


def final_metrics(work_dir, key='mIoU'):
    """The last validation's ``key`` (mIoU for segmentation, e.g.
    ``coco/bbox_mAP`` for detection) and the median training step time."""
    logs = read_scalars(work_dir)
    val = [x for x in logs if key in x]
    if not val:
        raise SystemExit(f'no validation with {key!r} logged in {work_dir}')
    train = [x for x in logs if 'time' in x and 'loss' in x]
    times = [x['time'] for x in train[1:]] or [x['time'] for x in train]
    if key != 'mIoU':
        return {key: val[-1][key], 'time_per_iter': statistics.median(times)}
    return dict(mIoU=val[-1]['mIoU'], aAcc=val[-1].get('aAcc'),
                teacher_mIoU=val[-1].get('teacher.mIoU'),
                time_per_iter=statistics.median(times))


def complexity(config, size):
    """Parameters and FLOPs of the model of a plain config."""
    import torch
    from mmengine.analysis import get_model_complexity_info
    from mmengine.config import Config

    import mmstructkd  # noqa: F401
    from mmstructkd.models.task_models import build_task_model
    model = build_task_model(dict(cfg_path=config), 'model').eval()
    inputs = torch.zeros(1, 3, size, size)
    with torch.no_grad():
        info = get_model_complexity_info(
            model, inputs=(inputs, ), show_table=False, show_arch=False)
    del Config
    return dict(params=info['params'], flops=info['flops'])


def file_digest(*paths):
    h = hashlib.sha1()
    for path in paths:
        with open(path, 'rb') as f:
            h.update(f.read())
    return h.hexdigest()[:12]


def train_cached(config, cached, iters, data_stamp, work_dir,
                 digest_files=(), log=print, metric_key='mIoU'):
    """Train ``config`` for ``iters`` (seed 0) into ``work_dir`` and copy the
    last checkpoint to ``cached``, unless ``cached`` was made from the same
    config files, iterations and data (a JSON stamp next to it); returns the
    final validation metrics either way."""
    stamp = cached + '.json'
    key = dict(config=file_digest(config, *digest_files), iters=iters,
               data=data_stamp)
    if osp.isfile(cached) and osp.isfile(stamp):
        with open(stamp) as f:
            saved = json.load(f)
        if saved.get('key') == key:
            log(f'reusing the cached {osp.relpath(cached, REPO_ROOT)}')
            return saved['metrics']
    log(f'training {osp.basename(config)} ({iters} iterations)')
    shutil.rmtree(work_dir, ignore_errors=True)
    run([sys.executable, 'tools/train.py', config, '--work-dir', work_dir,
         '--cfg-options'] + schedule_options(iters, 0) +
        scheduler_options(config, iters))
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        ckpt = f.read().strip()
    os.makedirs(osp.dirname(cached), exist_ok=True)
    shutil.copyfile(ckpt, cached)
    metrics = final_metrics(work_dir, metric_key)
    with open(stamp, 'w') as f:
        json.dump(dict(key=key, metrics=metrics), f)
    return metrics


def train_teacher(args, out_dir):
    return train_cached(
        TEACHER_CFG, TEACHER_CKPT, args.teacher_iters, args.data_stamp,
        osp.join(out_dir, 'teacher'),
        digest_files=[osp.join(TOY, '_base_', 'models', 'pspnet_r18-thin.py')],
        log=lambda msg: print(f'[demo] {msg}'))


def toy_data_stamp(data_root=None):
    """Digest of the toy set's annotation files (changes when it does)."""
    data_root = data_root or osp.join(REPO_ROOT, 'data', 'toy_scenes')
    stamps = glob.glob(osp.join(data_root, '*.json'))
    return file_digest(*sorted(stamps)) if stamps else None


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
    parser.add_argument('--iters', type=int, default=500,
                        help='training iterations of each student')
    parser.add_argument('--teacher-iters', type=int, default=1500)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--jobs', type=int, default=2,
                        help='students trained at a time')
    parser.add_argument('--out', default=osp.join(REPO_ROOT, 'work_dirs',
                                                  'demo'))
    args = parser.parse_args(argv)
    start = time.time()
    os.makedirs(args.out, exist_ok=True)

    print('[demo] toy data')
    run([sys.executable, 'tools/make_toy_data.py'])
    args.data_stamp = toy_data_stamp()

    teacher = train_teacher(args, args.out)
    teacher_ckpt = TEACHER_CKPT

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
        if config != STUDENT_CFG:
            options.append(f'model.teacher_ckpt={teacher_ckpt}')
        run([sys.executable, 'tools/train.py', config, '--work-dir',
             work_dir, '--cfg-options'] + options, prefix=f'    [{tag}] ',
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
    cost = dict(teacher=complexity(TEACHER_CFG, size),
                student=complexity(STUDENT_CFG, size))
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


if __name__ == '__main__':
    main()
