"""Teachers trained once and reused while nothing they depend on changed.

A cached checkpoint ``X.pth`` has a stamp ``X.pth.json`` next to it: the
digest of its resolved config (every ``_base_`` file it inherits, whether
in this repository or in mmseg/mmdet, is folded in), its number of
iterations, the digest of the data and the split it was trained on, with
the validation metrics of that training.

Toy teachers train on ``train_fit`` only: the students' loss weights are
chosen on ``train_holdout``, and a teacher that had seen those images would
hand the students its memory of them instead of what it learned.
"""
import glob
import hashlib
import json
import os
import os.path as osp
import shutil
from typing import Callable, List, Optional, Sequence

from .config_lists import REPO_ROOT, TOY_DATA_ROOT
from .toy_training import schedule_options, scheduler_options, train
from .training_logs import final_metrics


def file_digest(*paths: str) -> str:
    """First 12 hex digits of the SHA-1 of the files' contents."""
    h = hashlib.sha1()
    for path in paths:
        with open(path, 'rb') as f:
            h.update(f.read())
    return h.hexdigest()[:12]


def config_digest(config: str) -> str:
    """First 12 hex digits of the SHA-1 of ``config`` as mmengine resolves
    it, so that an edit to any file it inherits from changes the digest
    and a mere reformatting of the file does not.

    The config's ``data_root`` is left out (where a string starts with it,
    it stands as ``<data_root>``): the data are keyed apart, by their content
    (:func:`toy_data_stamp`), so the same set at another path (another
    ``TOY_DATA_ROOT``) keeps the key."""
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    text = json.dumps(cfg.to_dict(), sort_keys=True, default=repr)
    data_root = cfg.get('data_root')
    if isinstance(data_root, str) and data_root:
        # Only at the start of a string (the root and the paths under it),
        # never inside another word.
        text = text.replace('"' + json.dumps(data_root)[1:-1], '"<data_root>')
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def toy_data_stamp(data_root: Optional[str] = None) -> Optional[str]:
    """Digest of the toy set's annotation files (changes when it does)."""
    data_root = data_root or TOY_DATA_ROOT
    stamps = glob.glob(osp.join(data_root, '*.json'))
    return file_digest(*sorted(stamps)) if stamps else None


# The part of train each task's teacher trains on (see the module's note).
TEACHER_TRAIN_SPLIT = dict(
    seg="train_dataloader.dataset.ann_file=splits/train_fit.txt",
    det="train_dataloader.dataset.ann_file="
    "annotations/instances_train_fit.json")


def teacher_split_options(task: str) -> List[str]:
    """``--cfg-options`` that train a ``task`` ('seg', 'det' or 'ins')
    teacher on ``train_fit``."""
    return [TEACHER_TRAIN_SPLIT['seg' if task == 'seg' else 'det']]


def train_cached(config: str, cached: str, iters: int,
                 data_stamp: Optional[str], work_dir: str,
                 log: Callable[[str], None] = print,
                 metric_key: str = 'mIoU',
                 options: Sequence[str] = (),
                 depends: Sequence[str] = (),
                 extra_env: Optional[dict] = None) -> dict:
    """Train ``config`` for ``iters`` (seed 0, extra ``--cfg-options``
    ``options``, environment ``extra_env``) into ``work_dir`` and copy the
    last checkpoint to ``cached``, unless ``cached`` was made from the same
    resolved config, iterations, options, data and files ``depends`` (e.g.
    a checkpoint that initialises it; a JSON stamp next to it holds their
    digests); returns the final validation metrics either way."""
    stamp = cached + '.json'
    key = dict(config=config_digest(config), iters=iters,
               data=data_stamp, options=list(options))
    if depends:
        key['depends'] = file_digest(*depends)
    if osp.isfile(cached) and osp.isfile(stamp):
        with open(stamp) as f:
            saved = json.load(f)
        if saved.get('key') == key:
            log(f'reusing the cached {osp.relpath(cached, REPO_ROOT)}')
            return saved['metrics']
    log(f'training {osp.basename(config)} ({iters} iterations)')
    shutil.rmtree(work_dir, ignore_errors=True)
    train(config, work_dir,
          schedule_options(iters, 0) + scheduler_options(config, iters) +
          list(options),
          echo_prefix='    ', extra_env=extra_env)
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        ckpt = f.read().strip()
    os.makedirs(osp.dirname(cached), exist_ok=True)
    shutil.copyfile(ckpt, cached)
    metrics = final_metrics(work_dir, metric_key)
    with open(stamp, 'w') as f:
        json.dump(dict(key=key, metrics=metrics), f)
    return metrics
