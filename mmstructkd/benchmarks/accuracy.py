"""How much each distillation method helps the toy student, honestly measured.

Data: segmentation reads the bundled toy set (``--data-root``);
detection reads its own set, drawn in the detection layout (larger, nearer
objects; ``--det-data-root``, generated with ``DATA_LAYOUT['det']`` when
missing), where the toy GFL pair at 96x96 is the detection proxy.

Protocol (the same for every method, segmentation and detection):

1. Teachers: the toy PSPNet teacher of ``make demo`` (shared cache
   ``work_dirs/toy/teacher.pth``), the toy DeepLabV3 teacher (the second
   teacher of the two-teacher row, ``work_dirs/toy/deeplabv3/teacher.pth``)
   and toy RetinaNet / Faster R-CNN / GFL teachers
   (``work_dirs/toy/{retinanet,faster-rcnn,gfl}_teacher.pth``), trained on
   ``splits/train_fit`` only (never on the held-out images that choose the
   students' weights), reused when their config, schedule and data are
   unchanged. The GFL teacher's backbone starts from the PSPNet teacher's
   (``Teacher.backbone_from``; that checkpoint joins its cache key), as a
   real detector's starts from a network trained on another task; the
   students start from scratch.
2. Hyper-parameter choice, never on val: every distillation method's loss
   weights are scaled together by each factor of ``--factors`` (1 = the
   config's weights); the student trains on ``splits/train_fit`` (80 % of
   train) and is scored on ``splits/train_holdout`` (the other 20 %). The
   factor with the best held-out score (mIoU / bbox mAP) is kept. One seed
   per factor, a shorter schedule (``--select-iters``; detection
   ``--det-select-iters``).
3. Final runs: every method with its chosen factor, and the plain student,
   on the full train split for ``--seeds`` with the same schedule
   (``--iters``; detection ``--det-iters``), scored on val: mIoU and boundary IoU (segmentation;
   ``mmstructkd.BoundaryIoUMetric``), bbox mAP (detection).
4. Report: mean and standard deviation over seeds, and the fraction of the
   teacher-student gap that the mean closes,
   ``(method - plain) / (teacher - plain)``.

Nothing is tuned on val and every number comes from this run's logs. Runs
execute ``--jobs`` at a time, each with ``cpu_count / jobs`` threads; a run
whose result file already matches its settings is reused, so an interrupted
benchmark resumes where it stopped.

Usage:
    python tools/benchmark_accuracy.py [--task seg det] [--seeds 0 1 2]
        [--iters 500] [--select-iters 300] [--det-iters 1000]
        [--det-select-iters 500] [--factors 0.3 1 3] [--jobs 2]
"""
import argparse
import json
import os
import os.path as osp
import shlex
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, List, Optional

from .config_lists import (FRCNN_PAIR, GFL_PAIR, MULTI_TEACHER_CONFIG,
                           REPO_ROOT, RESULTS_DIR, RETINA_PAIR, SEG_PAIR,
                           TOY_DATA_ROOT, TOY_DEEPLAB_TEACHER,
                           TOY_DET_DATA_ROOT,
                           TOY_FRCNN_STUDENT, TOY_FRCNN_TEACHER,
                           TOY_GFL_STUDENT, TOY_GFL_TEACHER,
                           TOY_RETINA_STUDENT, TOY_RETINA_TEACHER,
                           TOY_SEG_STUDENT, TOY_SEG_TEACHER,
                           TOY_TEACHER_CKPT, toy_config)
from .processes import check_python
from .teacher_cache import (config_digest, file_digest,
                            teacher_split_options, toy_data_stamp,
                            train_cached)
from .toy_training import schedule_options, scheduler_options, train
from .training_logs import load_scalars


@dataclass
class Teacher:
    name: str
    config: str
    checkpoint_name: str  # file name under --teacher-dir
    checkpoint: Optional[str] = None  # set from --teacher-dir in main()
    # Key of a segmentation teacher whose backbone this teacher's starts
    # from (as a real detector's starts from a network trained on another
    # task); its checkpoint's digest joins this teacher's cache key.
    backbone_from: Optional[str] = None

    def init_options(self) -> List[str]:
        """``--cfg-options`` that load ``backbone_from``'s backbone."""
        if not self.backbone_from:
            return []
        source = TEACHERS[self.backbone_from].checkpoint
        key = 'model.backbone.init_cfg'
        return [f'{key}._delete_=True', f'{key}.type=Pretrained',
                f'{key}.checkpoint={osp.relpath(source, REPO_ROOT)}',
                f'{key}.prefix=backbone.']


@dataclass
class Method:
    name: str
    config: str
    teacher: str  # key of TEACHERS: the plain student and gap it is read by
    distill: bool = True
    # MultiTeacherDistill: the config's teacher names -> keys of TEACHERS
    # (``teacher`` is one of them).
    teachers: Optional[Dict[str, str]] = None

    def teacher_keys(self) -> List[str]:
        """The TEACHERS this method needs trained."""
        return list(self.teachers.values()) if self.teachers else [
            self.teacher]

    def teacher_options(self) -> List[str]:
        """``--cfg-options`` that point the config at the cached teachers."""
        if self.teachers:
            return [f'model.teachers.{name}.ckpt={TEACHERS[key].checkpoint}'
                    for name, key in self.teachers.items()]
        return [f'model.teacher_ckpt={TEACHERS[self.teacher].checkpoint}']


TEACHERS = {
    'pspnet': Teacher('teacher (PSPNet R34-thin32)', TOY_SEG_TEACHER,
                      osp.basename(TOY_TEACHER_CKPT)),
    'retinanet': Teacher('teacher (RetinaNet R34-thin32)', TOY_RETINA_TEACHER,
                         'retinanet_teacher.pth'),
    'faster-rcnn': Teacher('teacher (Faster R-CNN R34-thin32)',
                           TOY_FRCNN_TEACHER, 'faster-rcnn_teacher.pth'),
    'gfl': Teacher('teacher (GFL R34-thin32)', TOY_GFL_TEACHER,
                   'gfl_teacher.pth', backbone_from='pspnet'),
    'deeplabv3': Teacher('second teacher (DeepLabV3 R34-thin32)',
                         TOY_DEEPLAB_TEACHER,
                         osp.join('deeplabv3', 'teacher.pth')),
}

SEG_METHODS = [
    Method('student (no KD)', TOY_SEG_STUDENT, 'pspnet', distill=False),
    Method('SKD pi', toy_config('skd_pi_' + SEG_PAIR), 'pspnet'),
    Method('SKD pa (pooled 0.5)', toy_config('skd_pa_' + SEG_PAIR),
           'pspnet'),
    Method('SKD pa (full res)', toy_config('skd_pa-fullres_' + SEG_PAIR),
           'pspnet'),
    Method('SKD ho', toy_config('skd_ho_' + SEG_PAIR), 'pspnet'),
    Method('SKD pi+pa+ho', toy_config('skd_pi-pa-ho_' + SEG_PAIR),
           'pspnet'),
    Method('CWD logits', toy_config('cwd_logits_' + SEG_PAIR), 'pspnet'),
    Method('CWD features', toy_config('cwd_feats_' + SEG_PAIR), 'pspnet'),
    Method('BCD', toy_config('bcd_' + SEG_PAIR), 'pspnet'),
    Method('DIST', toy_config('dist_logits_' + SEG_PAIR), 'pspnet'),
    Method('CWD logits, two teachers (PSPNet + DeepLabV3)',
           MULTI_TEACHER_CONFIG, 'pspnet',
           teachers=dict(pspnet='pspnet', deeplabv3='deeplabv3')),
]
DET_METHODS = [
    # The detection proxy (96x96 scenes of the detection layout), where the
    # GFL teacher is well ahead of its student.
    Method('GFL student (no KD)', TOY_GFL_STUDENT, 'gfl', distill=False),
    Method('CWD-FPN (GFL)', toy_config('cwd_fpn_' + GFL_PAIR), 'gfl'),
    Method('PKD-FPN (GFL)', toy_config('pkd_fpn_' + GFL_PAIR), 'gfl'),
    Method('CrossKD (GFL)', toy_config('crosskd_' + GFL_PAIR), 'gfl'),
    # 64x64 RetinaNet / Faster R-CNN pairs: their teachers stay far below
    # the proxy's, so these rows cannot rank methods yet.
    Method('RetinaNet student (no KD)', TOY_RETINA_STUDENT, 'retinanet',
           distill=False),
    Method('CWD-FPN', toy_config('cwd_fpn_' + RETINA_PAIR), 'retinanet'),
    Method('SKD pa-FPN (full res)', toy_config('skd_pa-fpn_' + RETINA_PAIR),
           'retinanet'),
    Method('BCD (RetinaNet)', toy_config('bcd_' + RETINA_PAIR),
           'retinanet'),
    Method('PKD-FPN (RetinaNet)', toy_config('pkd_fpn_' + RETINA_PAIR),
           'retinanet'),
    Method('MGD-FPN', toy_config('mgd_fpn_' + RETINA_PAIR), 'retinanet'),
    Method('DIST (RetinaNet cls)', toy_config('dist_cls_' + RETINA_PAIR),
           'retinanet'),
    Method('CrossKD (RetinaNet)', toy_config('crosskd_' + RETINA_PAIR),
           'retinanet'),
    Method('Faster R-CNN student (no KD)', TOY_FRCNN_STUDENT, 'faster-rcnn',
           distill=False),
    Method('SSIM-FPN', toy_config('ssim_fpn_' + FRCNN_PAIR),
           'faster-rcnn'),
    Method('PKD-FPN (Faster R-CNN)', toy_config('pkd_fpn_' + FRCNN_PAIR),
           'faster-rcnn'),
    Method('FBKD-FPN', toy_config('fbkd_fpn_' + FRCNN_PAIR), 'faster-rcnn'),
]
TASKS = dict(seg=SEG_METHODS, det=DET_METHODS)
# tools/make_toy_data.py options of each task's set: detection uses larger,
# nearer objects (see configs/toy/_base_/datasets/toyscenes_det-96x96.py).
DATA_LAYOUT = dict(seg=[], det=['--object-scale', '1.5', '--min-depth',
                                '0.55'])
# The score that picks the factor and the ones reported, per task.
SELECT_KEY = dict(seg='mIoU', det='coco/bbox_mAP')
REPORT_KEYS = dict(seg=['mIoU', 'bIoU'], det=['coco/bbox_mAP',
                                              'coco/bbox_mAP_50'])


def wrapper_config(task: str, base: str, split: str, data_root: str) -> str:
    """A config that inherits ``base`` and sets the split and evaluators.

    ``split='select'`` trains on train_fit and validates on train_holdout;
    ``split='final'`` keeps the config's train / val.
    """
    lines = [f'_base_ = [{base!r}]']
    if task == 'seg':
        if split == 'select':
            lines += [
                "train_dataloader = dict(dataset=dict("
                "ann_file='splits/train_fit.txt'))",
                "val_dataloader = dict(dataset=dict("
                "ann_file='splits/train_holdout.txt', data_prefix=dict("
                "img_path='img_dir/train', seg_map_path='ann_dir/train')))",
                'test_dataloader = val_dataloader',
            ]
        lines += [
            "val_evaluator = [dict(type='IoUMetric', iou_metrics=['mIoU']), "
            "dict(type='mmstructkd.BoundaryIoUMetric')]",
            'test_evaluator = val_evaluator',
        ]
    elif split == 'select':
        holdout = osp.join(data_root, 'annotations',
                           'instances_train_holdout.json')
        lines += [
            "train_dataloader = dict(dataset=dict("
            "ann_file='annotations/instances_train_fit.json'))",
            "val_dataloader = dict(dataset=dict("
            "ann_file='annotations/instances_train_holdout.json', "
            "data_prefix=dict(img='img_dir/train/')))",
            'test_dataloader = val_dataloader',
            f'val_evaluator = dict(ann_file={holdout!r})',
            'test_evaluator = val_evaluator',
        ]
    return '\n'.join(lines) + '\n'


def loss_weights(config: str) -> Dict[str, float]:
    """The distillation loss weights a config sets (name -> weight)."""
    from mmengine.config import Config
    losses = Config.fromfile(config).model.distiller.distill_losses
    return {name: float(loss.get('loss_weight', 1.0))
            for name, loss in losses.items()}


class Runner:
    """Runs training jobs in parallel subprocesses and caches their results.

    Each run lives in ``work_root/<task>/<stage>/<tag>`` with its wrapper
    config, its log and ``result.json`` (the settings and final metrics).
    """

    def __init__(self, args):
        self.args = args
        self.threads = max(1, (os.cpu_count() or 1) // args.jobs)
        self.done = 0
        self.total = 0
        self.start = time.time()

    def settings(self, task, method, split, seed, iters, weights):
        return dict(task=task, config=osp.relpath(method.config, REPO_ROOT),
                    config_digest=config_digest(method.config),
                    split=split, seed=seed, iters=iters, weights=weights,
                    teacher=[file_digest(TEACHERS[key].checkpoint)
                             for key in method.teacher_keys()]
                    if method.distill else None)

    def train(self, task, method, split, seed, iters, weights, tag):
        work_dir = osp.join(self.args.work_dir, task, split, tag)
        settings = self.settings(task, method, split, seed, iters, weights)
        result_file = osp.join(work_dir, 'result.json')
        if osp.isfile(result_file):
            with open(result_file) as f:
                saved = json.load(f)
            if saved.get('settings') == settings:
                self.report(f'{task}/{split}/{tag}: reused', saved)
                return saved
        os.makedirs(work_dir, exist_ok=True)
        config = osp.join(work_dir, 'config.py')
        with open(config, 'w') as f:
            f.write(wrapper_config(task, method.config, split,
                                   self.args.data_roots[task]))
        options = schedule_options(iters, seed) + \
            scheduler_options(method.config, iters)
        if method.distill:
            options += method.teacher_options()
            options += [
                f'model.distiller.distill_losses.{name}.loss_weight={w}'
                for name, w in weights.items()
            ]
        started = time.time()
        train(config, work_dir, options,
              log_path=osp.join(work_dir, 'train.log'), threads=self.threads,
              extra_env=dict(TOY_DATA_ROOT=self.args.data_roots[task]),
              failure=f'[accuracy] {task}/{split}/{tag} failed')
        metrics = load_scalars(work_dir)
        val = [x for x in metrics if SELECT_KEY[task] in x][-1]
        train_times = [x['time'] for x in metrics
                       if 'time' in x and 'loss' in x][1:]
        result = dict(settings=settings,
                      metrics={k: v for k, v in val.items()
                               if k not in ('step', 'time', 'data_time')},
                      time_per_iter=statistics.median(train_times)
                      if train_times else None,
                      wall_s=time.time() - started)
        with open(result_file, 'w') as f:
            json.dump(result, f, indent=1)
        self.report(f'{task}/{split}/{tag}', result)
        return result

    def report(self, label, result):
        self.done += 1
        elapsed = (time.time() - self.start) / 60
        scores = ' '.join(f'{k}={result["metrics"].get(k)}'
                          for k in REPORT_KEYS[result['settings']['task']])
        print(f'[accuracy] {self.done}/{self.total} {label}: {scores} '
              f'({elapsed:.1f} min so far)', flush=True)

    def map(self, jobs):
        """Run ``jobs`` (argument tuples of :meth:`train`), ``--jobs`` at a
        time; results in order."""
        self.total += len(jobs)
        with ThreadPoolExecutor(self.args.jobs) as pool:
            return list(pool.map(lambda job: self.train(*job), jobs))


def train_teacher(task: str, teacher: Teacher, args) -> None:
    """Train ``teacher`` on ``task``'s set, or reuse its cached checkpoint
    (first the teacher its backbone starts from, if any)."""
    depends = []
    if teacher.backbone_from:
        train_teacher('seg', TEACHERS[teacher.backbone_from], args)
        depends = [TEACHERS[teacher.backbone_from].checkpoint]
    train_cached(teacher.config, teacher.checkpoint, args.teacher_iters[
        task], args.data_stamps[task], osp.join(
            args.work_dir, 'teachers', osp.basename(teacher.checkpoint)),
        metric_key=SELECT_KEY[task],
        log=lambda msg: print(f'[accuracy] {msg}', flush=True),
        options=teacher_split_options(task) + teacher.init_options(),
        depends=depends,
        extra_env=dict(TOY_DATA_ROOT=args.data_roots[task]))


def teacher_metrics(task: str, teacher: Teacher, args) -> dict:
    """Train (or reuse) a teacher, then score it on val with the report's
    metrics (tools/test.py on the wrapper config)."""
    train_teacher(task, teacher, args)
    work_dir = osp.join(args.work_dir, 'teachers',
                        osp.basename(teacher.checkpoint) + '.test')
    os.makedirs(work_dir, exist_ok=True)
    config = osp.join(work_dir, 'config.py')
    with open(config, 'w') as f:
        f.write(wrapper_config(task, teacher.config, 'final',
                               args.data_roots[task]))
    out = osp.join(work_dir, 'metrics.json')
    check_python(['tools/test.py', config, teacher.checkpoint, '--work-dir',
                  work_dir, '--out', out],
                 extra_env=dict(TOY_DATA_ROOT=args.data_roots[task]),
                 failure=f'[accuracy] testing {teacher.name} failed')
    with open(out) as f:
        return json.load(f)


def summarise(task, methods, finals, choices, teachers):
    """Mean / std per method and the gap fraction against its teacher."""
    keys = REPORT_KEYS[task]
    rows = {}
    plain = {}
    for method in methods:
        runs = finals[method.name]
        row = dict(teacher=method.teacher, distill=method.distill,
                   other_teachers=[k for k in method.teacher_keys()
                                   if k != method.teacher],
                   factor=choices.get(method.name, {}).get('factor'),
                   weights=choices.get(method.name, {}).get('weights'),
                   runs=[r['metrics'] for r in runs],
                   time_per_iter=statistics.median(
                       r['time_per_iter'] for r in runs))
        for key in keys:
            values = [r['metrics'][key] * (100 if task == 'det' else 1)
                      for r in runs]
            row[key] = dict(mean=statistics.mean(values),
                            std=statistics.stdev(values)
                            if len(values) > 1 else 0.0)
        if not method.distill:
            plain[method.teacher] = row
        rows[method.name] = row
    for row in rows.values():
        base = plain[row['teacher']]
        teacher = teachers[row['teacher']]
        for key in keys:
            t = teacher[key] * (100 if task == 'det' else 1)
            gap = t - base[key]['mean']
            row[key]['gap_closed'] = (
                (row[key]['mean'] - base[key]['mean']) / gap
                if row['distill'] and gap > 0 else None)
    return rows


def table(task, rows, teachers, args) -> str:
    keys = REPORT_KEYS[task]
    names = dict(mIoU='mIoU', bIoU='boundary IoU',
                 **{'coco/bbox_mAP': 'bbox mAP',
                    'coco/bbox_mAP_50': 'bbox mAP@50'})
    head = ['method', 'weight factor (held-out)'] + [
        f'{names[k]} mean ± std' for k in keys] + [
        f'gap closed ({names[keys[0]]})', 'helps?', 's/iter']
    lines = ['| ' + ' | '.join(head) + ' |',
             '|' + '---|' * len(head)]
    scale = 100 if task == 'det' else 1
    shown = set()
    for name, row in rows.items():
        teacher_key = row['teacher']
        # Each teacher's row comes before the first method it teaches.
        for key in [teacher_key] + row.get('other_teachers', []):
            if key in shown:
                continue
            shown.add(key)
            t = teachers[key]
            lines.append('| ' + ' | '.join(
                [TEACHERS[key].name, '-'] +
                [f'{t[k] * scale:.2f}' for k in keys] + ['-', '-', '-']) +
                ' |')
        first = row[keys[0]]
        if not row['distill']:
            verdict = '(baseline)'
        else:
            base = rows[next(n for n, r in rows.items()
                             if not r['distill'] and
                             r['teacher'] == teacher_key)][keys[0]]
            spread = max(first['std'], base['std'])
            delta = first['mean'] - base['mean']
            verdict = ('yes' if delta > spread else
                       'no (worse)' if delta < -spread else
                       'no (within seed spread)')
        gap = first.get('gap_closed')
        factor = row['factor']
        lines.append('| ' + ' | '.join(
            [name, '-' if factor is None else f'x{factor:g}'] +
            [f'{row[k]["mean"]:.2f} ± {row[k]["std"]:.2f}' for k in keys] +
            ['-' if gap is None else f'{gap * 100:.0f} %', verdict,
             f'{row["time_per_iter"]:.3f}']) + ' |')
    return '\n'.join(lines)


def run_task(task, runner, args):
    chosen = [m for m in TASKS[task] if m.distill and
              (not args.methods or m.name in args.methods)]
    families = {m.teacher for m in chosen}
    # A plain student runs when some chosen method distils into it.
    methods = [m for m in TASKS[task]
               if m in chosen or not m.distill and m.teacher in families]
    teachers = {}
    for key in dict.fromkeys(k for m in methods for k in m.teacher_keys()):
        teachers[key] = teacher_metrics(task, TEACHERS[key], args)
        print(f'[accuracy] {TEACHERS[key].name}: ' + ' '.join(
            f'{k}={teachers[key].get(k)}' for k in REPORT_KEYS[task]),
            flush=True)

    def tag(method, suffix):
        return (osp.basename(method.config)[:-3] + suffix)

    # 1. Choice of the weight factor on the held-out split of train.
    select_jobs, select_index = [], []
    base_weights = {}
    for method in methods:
        if not method.distill:
            continue
        base_weights[method.name] = loss_weights(method.config)
        for factor in args.factors:
            weights = {k: round(w * factor, 6)
                       for k, w in base_weights[method.name].items()}
            select_jobs.append((task, method, 'select', 0,
                                args.select_iters_for[task], weights,
                                tag(method, f'_x{factor:g}')))
            select_index.append((method.name, factor, weights))
    # The plain students' final runs need no choice: run them alongside.
    plain_jobs = [(task, m, 'final', seed, args.iters_for[task], {},
                   tag(m, f'_seed{seed}'))
                  for m in methods if not m.distill for seed in args.seeds]
    results = runner.map(select_jobs + plain_jobs)
    choices = {}
    for (name, factor, weights), result in zip(select_index, results):
        score = result['metrics'][SELECT_KEY[task]]
        entry = choices.setdefault(name, dict(held_out_scores={}))
        entry['held_out_scores'][f'{factor:g}'] = score
        if 'best_score' not in entry or score > entry['best_score']:
            entry.update(factor=factor, weights=weights, best_score=score)

    # 2. Final runs with the chosen factors.
    final_jobs = [(task, m, 'final', seed, args.iters_for[task],
                   choices[m.name]['weights'], tag(m, f'_seed{seed}'))
                  for m in methods if m.distill for seed in args.seeds]
    final_results = runner.map(final_jobs)
    finals = {m.name: [] for m in methods}
    for job, result in zip(plain_jobs + final_jobs,
                           results[len(select_jobs):] + final_results):
        finals[job[1].name].append(result)
    rows = summarise(task, methods, finals, choices, teachers)
    return dict(teachers=teachers, methods=rows, selection=choices)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--task', nargs='+', choices=list(TASKS),
                        default=list(TASKS))
    parser.add_argument('--methods', nargs='*',
                        help='only these distillation methods (by name); '
                        'the plain students always run')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--iters', type=int, default=500,
                        help='training iterations of each final '
                        'segmentation run')
    parser.add_argument('--select-iters', type=int, default=300,
                        help='training iterations of each held-out '
                        'segmentation run')
    parser.add_argument('--det-iters', type=int, default=1000,
                        help='training iterations of each final detection '
                        'run')
    parser.add_argument('--det-select-iters', type=int, default=500,
                        help='training iterations of each held-out '
                        'detection run')
    parser.add_argument('--factors', type=float, nargs='+',
                        default=[0.3, 1.0, 3.0],
                        help='loss-weight factors tried on the held-out '
                        'split')
    parser.add_argument('--seg-teacher-iters', type=int, default=1200)
    parser.add_argument('--det-teacher-iters', type=int, default=1500)
    parser.add_argument('--teacher-dir', default=osp.dirname(
        TOY_TEACHER_CKPT), help='where teacher checkpoints are cached '
        '(shared with make demo and the toy configs\' teacher_ckpt)')
    parser.add_argument('--jobs', type=int, default=2,
                        help='runs at a time (threads split between them)')
    parser.add_argument('--data-root', default=TOY_DATA_ROOT,
                        help='the segmentation set (generated if missing)')
    parser.add_argument('--det-data-root', default=TOY_DET_DATA_ROOT,
                        help='the detection set, in the detection layout '
                        '(generated if missing)')
    parser.add_argument('--work-dir', default=osp.join(
        REPO_ROOT, 'work_dirs', 'benchmark_accuracy'))
    parser.add_argument('--out-dir', default=RESULTS_DIR)
    args = parser.parse_args(argv)
    # Each task's set; every tool this starts is pointed at it with
    # TOY_DATA_ROOT.
    args.data_roots = dict(seg=osp.abspath(args.data_root),
                           det=osp.abspath(args.det_data_root))
    args.teacher_iters = dict(seg=args.seg_teacher_iters,
                              det=args.det_teacher_iters)
    args.iters_for = dict(seg=args.iters, det=args.det_iters)
    args.select_iters_for = dict(seg=args.select_iters,
                                 det=args.det_select_iters)
    start = time.time()
    # The detection teachers' backbones start from the segmentation
    # teacher's, so the segmentation set is needed for either task.
    needed = {'seg'} | set(args.task)
    for task in sorted(needed):
        root = args.data_roots[task]
        if not osp.isfile(osp.join(root, 'manifest.json')):
            check_python(['tools/make_toy_data.py', '--out', root] +
                         DATA_LAYOUT[task], echo_prefix='    ')
    args.data_stamps = {task: toy_data_stamp(args.data_roots[task])
                        for task in needed}
    for teacher in TEACHERS.values():
        teacher.checkpoint = osp.join(osp.abspath(args.teacher_dir),
                                      teacher.checkpoint_name)
    runner = Runner(args)
    os.makedirs(args.out_dir, exist_ok=True)
    for task in args.task:
        summary = run_task(task, runner, args)
        summary.update(
            # Quoted as a shell reads it (method names hold spaces).
            command='python tools/benchmark_accuracy.py ' + shlex.join(
                argv if argv is not None else sys.argv[1:]),
            seeds=args.seeds, iters=args.iters_for[task],
            select_iters=args.select_iters_for[task], factors=args.factors,
            teacher_iters=args.teacher_iters[task], jobs=args.jobs,
            threads_per_job=runner.threads,
            minutes=(time.time() - start) / 60)
        text = table(task, summary['methods'], summary['teachers'], args)
        print('\n' + text + '\n', flush=True)
        with open(osp.join(args.out_dir, f'accuracy_{task}.json'), 'w') as f:
            json.dump(summary, f, indent=1)
        with open(osp.join(args.out_dir, f'accuracy_{task}.md'), 'w') as f:
            f.write(text + '\n')
    print(f'[accuracy] done in {(time.time() - start) / 60:.1f} min; '
          f'results in {args.out_dir}')

