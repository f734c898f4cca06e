"""An empty data set is an error that names its folders, before training.

A data set that finds no samples (``data_root`` pointing at an empty folder,
a wrong ``data_prefix``, a wrong suffix) is otherwise reported by mmengine as
``ValueError: need at least one array to concatenate``, raised while it
serialises its empty sample list, far from the cause.

Two checks, both raising :class:`EmptyDatasetError`:

* :class:`NonEmptyDatasetMixin`, for our data set classes: after the
  sample list is loaded (and again after ``filter_cfg`` filtered it), an
  empty list raises an error naming ``data_root``, every ``data_prefix`` entry
  (as given and as the folder it resolves to, with what that folder holds),
  the suffix searched for and the ``ann_file``. It runs when the data set is
  built, i.e. when the Runner builds the dataloader at the start of
  ``runner.train()``, before the first iteration.
* :func:`check_data_folders`, for any mmengine-style data set config (mmseg,
  mmdet, ours): a static look at the config's folders that needs no data set
  class of ours and builds nothing. It raises when a ``data_prefix`` folder
  or the ``ann_file`` does not exist or a folder holds no file at all; call
  it on ``cfg.train_dataloader.dataset`` before the Runner is built.

Example:
    >>> check_data_folders(dict(  # doctest: +SKIP
    ...     type='ADE20KDataset', data_root='/data/empty',
    ...     data_prefix=dict(img_path='images/training',
    ...                      seg_map_path='annotations/training')))
    Traceback (most recent call last):
    ...
    EmptyDatasetError: train_dataloader.dataset (ADE20KDataset): ...
"""
import os
import os.path as osp
from typing import List, Optional, Tuple

# File names shown as examples of what a folder holds.
_MAX_EXAMPLES = 3


class EmptyDatasetError(ValueError):
    """A data set has no samples (or its folders do not exist)."""


def _is_remote(path: str) -> bool:
    return '://' in path


def _example_files(folder: str, limit: int = _MAX_EXAMPLES) -> List[str]:
    """Up to ``limit`` file paths under ``folder`` (relative to it), found
    by a walk that stops as soon as it has them (cheap on big folders)."""
    found = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs.sort()
        for name in sorted(files):
            found.append(osp.relpath(osp.join(root, name), folder))
            if len(found) >= limit:
                return found
    return found


def describe_folder(folder: str, suffix: Optional[str] = None) -> str:
    """What ``folder`` holds, in words: missing, empty, or example files.

    Args:
        folder: a local path.
        suffix: the file suffix the data set looked for; when given, the
            folder is said to hold none of them (the caller found none).
    """
    if not osp.exists(folder):
        return 'does not exist'
    if not osp.isdir(folder):
        return 'is a file, not a folder'
    examples = _example_files(folder)
    if not examples:
        return 'holds no files (only empty folders)' if os.listdir(
            folder) else 'is empty'
    shown = ', '.join(repr(e) for e in examples)
    if suffix:
        return (f'holds files (e.g. {shown}) but none ending in {suffix!r}')
    return f'holds files (e.g. {shown})'


def _relative(path: str, data_root: str) -> str:
    """``path`` as given in the config: relative to data_root if under it."""
    if data_root and not _is_remote(path):
        rel = osp.relpath(path, data_root)
        if not rel.startswith(os.pardir):
            return rel
    return path


def _data_root_line(data_root: str) -> str:
    if not data_root or _is_remote(data_root):
        return ''
    state = describe_folder(data_root)
    if state.startswith('holds files'):
        return ''
    return f'data_root {data_root!r} {state}. '


def describe_empty_dataset(dataset) -> str:
    """The error message for a built data set whose sample list is empty.

    Reads mmengine's ``BaseDataset`` attributes (``data_root``, the joined
    ``data_prefix`` and ``ann_file``) and, if present, ``img_suffix``.
    """
    name = type(dataset).__name__
    data_root = getattr(dataset, 'data_root', '') or ''
    suffix = getattr(dataset, 'img_suffix', None)
    ann_file = getattr(dataset, 'ann_file', '') or ''
    lines = []
    for key, folder in (getattr(dataset, 'data_prefix', None) or {}).items():
        given = _relative(folder, data_root)
        if _is_remote(folder):
            state = 'is remote (not inspected)'
        else:
            # Without an ann_file, mmseg lists the image folder: that is
            # where the suffix matters.
            state = describe_folder(
                folder, suffix if key == 'img_path' and not ann_file else
                None)
        lines.append(f'  data_prefix {key}={given!r}: folder {folder} '
                     f'{state}')
    if ann_file:
        given = _relative(ann_file, data_root)
        if _is_remote(ann_file) or osp.isfile(ann_file):
            state = 'exists but lists no samples'
        else:
            state = 'does not exist'
        lines.append(f'  ann_file={given!r}: {ann_file} {state}')
    where = '\n'.join(lines) if lines else '  (no data_prefix, no ann_file)'
    return (f'{name} found no samples (data_root={data_root!r}):\n{where}\n'
            f'{_data_root_line(data_root)}Point data_root at the data set '
            f'and data_prefix at its folders (relative to data_root)'
            f'{getattr(dataset, "EMPTY_HINT", "")}. Nothing was trained.')


class NonEmptyDatasetMixin:
    """Make a data set class raise :class:`EmptyDatasetError` when it finds
    no samples, or when ``filter_cfg`` removes them all.

    Put it before the mmengine data set class in the bases. A class may set
    ``EMPTY_HINT`` (appended to the advice, starting with ``'; '``).
    """
    EMPTY_HINT = ''

    def load_data_list(self) -> List[dict]:
        try:
            data_list = super().load_data_list()
        except FileNotFoundError as e:
            # A missing folder or ann_file: the same report, which says
            # which of them is missing.
            raise EmptyDatasetError(describe_empty_dataset(self)) from e
        if not data_list:
            raise EmptyDatasetError(describe_empty_dataset(self))
        return data_list

    def filter_data(self) -> List[dict]:
        data_list = super().filter_data()
        if not data_list and self.data_list:
            raise EmptyDatasetError(
                f'{type(self).__name__}: all {len(self.data_list)} samples '
                f'of data_root={self.data_root!r} (ann_file='
                f'{self.ann_file!r}) were removed by filter_cfg='
                f'{self.filter_cfg} (e.g. filter_empty_gt drops images '
                f'without annotations). Check the annotations, or relax '
                f'filter_cfg. Nothing was trained.')
        return data_list


def _dataset_cfgs(cfg, where: str) -> List[Tuple[str, dict]]:
    """The leaf data set configs under wrappers (ConcatDataset's
    ``datasets``, RepeatDataset's or ClassBalancedDataset's ``dataset``)."""
    if 'datasets' in cfg:
        found = []
        for i, sub in enumerate(cfg['datasets']):
            found += _dataset_cfgs(sub, f'{where}.datasets[{i}]')
        return found
    if 'dataset' in cfg and isinstance(cfg['dataset'], dict):
        return _dataset_cfgs(cfg['dataset'], f'{where}.dataset')
    return [(where, cfg)]


def check_data_folders(dataset_cfg: dict,
                       where: str = 'train_dataloader.dataset') -> None:
    """Raise :class:`EmptyDatasetError` if a folder of a data set config is
    missing or holds no file, or its ``ann_file`` is missing.

    Works on the config alone, for any data set type that takes mmengine's
    ``data_root`` / ``data_prefix`` / ``ann_file``; remote paths
    (``s3://...``) are not inspected. It catches the empty or wrong folder;
    a folder with files of the wrong kind is left to the data set class
    (:class:`NonEmptyDatasetMixin`).

    Args:
        dataset_cfg: e.g. ``cfg.train_dataloader.dataset``.
        where: how the config names it, used in the message.
    """
    for name, cfg in _dataset_cfgs(dataset_cfg, where):
        data_root = cfg.get('data_root') or ''
        problems = []
        prefixes = cfg.get('data_prefix') or {}
        for key, prefix in prefixes.items():
            if not isinstance(prefix, str):
                continue
            folder = prefix if osp.isabs(prefix) or not data_root else \
                osp.join(data_root, prefix)
            if _is_remote(folder):
                continue
            state = describe_folder(folder)
            if not state.startswith('holds files'):
                problems.append(f'  data_prefix {key}={prefix!r}: folder '
                                f'{folder} {state}')
        ann_file = cfg.get('ann_file') or ''
        if ann_file and not _is_remote(ann_file):
            path = ann_file if osp.isabs(ann_file) or not data_root else \
                osp.join(data_root, ann_file)
            if not osp.exists(path):
                problems.append(f'  ann_file={ann_file!r}: {path} does not '
                                f'exist')
        if problems:
            kind = cfg.get('type', 'data set')
            raise EmptyDatasetError(
                f'{name} ({kind}) has no data to read '
                f'(data_root={data_root!r}):\n' + '\n'.join(problems) +
                f'\n{_data_root_line(data_root)}Point data_root at the data '
                f'set and data_prefix at its folders (relative to '
                f'data_root). Nothing was trained.')
