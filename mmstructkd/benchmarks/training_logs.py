"""What the benchmarks read from a training's logs (read by
:mod:`mmstructkd.utils.training_logs`)."""
import statistics

from mmstructkd.utils.training_logs import find_scalars, load_scalars

__all__ = ['find_scalars', 'load_scalars', 'final_metrics']


def final_metrics(work_dir: str, key: str = 'mIoU') -> dict:
    """The last validation's ``key`` (mIoU for segmentation, e.g.
    ``coco/bbox_mAP`` for detection) and the median training step time
    (the first step, with its one-off set-up, left out)."""
    logs = load_scalars(work_dir)
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
