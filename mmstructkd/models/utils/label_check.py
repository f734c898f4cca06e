"""Check a batch's ground-truth labels against the classes of the student.

A label the heads cannot take (a value 9 in a label map of a 5-class
segmentation head, a box labelled 9 for a 3-class detector) otherwise fails
deep inside the loss: ``IndexError: Target 9 is out of bounds`` on the CPU,
an opaque device-side assert that kills the process on CUDA. Checked here, the
error names the class count, the offending values and the files they came
from (``seg_map_path`` / ``img_path`` of the data samples' metainfo).

The check reads only the model and the batch, so it works for any mmseg or
mmdet data set. It runs on every batch: the sampler shuffles, so a bad file
can turn up at any step, and a pass over the data set before training would
read every label file once more and miss values that transforms produce.
Its cost is one ``aminmax`` per label map (after setting ignored pixels to
0) and one host sync of the extremes, before the loss: on the CPU 0.4 ms for
a toy batch (8 x 96 x 96), 0.1 % of a toy distillation step, and about 30 ms
for a Cityscapes batch (8 x 512 x 1024, one thread), where a CPU step takes
tens of seconds; on a GPU a few small kernels per image and one sync of a
handful of integers, at a point where the queue holds only the batch's
copy and normalisation.

Example:
    >>> import torch
    >>> from mmseg.structures import SegDataSample
    >>> from mmengine.structures import PixelData
    >>> sample = SegDataSample(gt_sem_seg=PixelData(
    ...     data=torch.tensor([[[0, 4, 255]]])))
    >>> check_labels([sample], LabelSpace(seg_classes=5))  # fine
    >>> sample.gt_sem_seg.data[0, 0, 0] = 9
    >>> check_labels([sample], LabelSpace(seg_classes=5))
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Segmentation label out of range: value 9 ...
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

# Files listed in an error, at most (a systematically wrong data set would
# list the whole batch).
MAX_LISTED = 5


@dataclass(frozen=True)
class LabelSpace:
    """The labels a model's heads accept.

    Attributes:
        seg_classes: classes of the segmentation head (valid labels
            ``0..seg_classes - 1``); None when there is no such head.
        ignore_index: label-map value the segmentation loss skips (mmseg's
            default 255); None when every value must be a class.
        det_classes: classes of the detection head (valid box labels
            ``0..det_classes - 1``); None when there is no such head.
        seg_head: dotted name of the segmentation head, named in errors.
        det_head: dotted name of the detection head, named in errors.
    """
    seg_classes: Optional[int] = None
    ignore_index: Optional[int] = 255
    det_classes: Optional[int] = None
    seg_head: str = 'decode_head'
    det_head: str = 'bbox_head'


def _last(head):
    # Cascades keep one head per stage in a ModuleList; they share classes.
    if isinstance(head, (nn.ModuleList, list, tuple)):
        return head[-1] if len(head) else None
    return head


def student_label_space(model: nn.Module) -> LabelSpace:
    """What labels ``model`` (a plain mmseg or mmdet model) accepts.

    Segmentation: ``decode_head.num_classes`` and ``decode_head.ignore_index``.
    Detection: ``roi_head.bbox_head.num_classes`` (two-stage) or
    ``bbox_head.num_classes`` (one-stage). A head that is not found leaves
    its part unchecked.
    """
    seg_classes = ignore_index = det_classes = None
    decode_head = _last(getattr(model, 'decode_head', None))
    if decode_head is not None:
        seg_classes = getattr(decode_head, 'num_classes', None)
        ignore_index = getattr(decode_head, 'ignore_index', None)
    det_head_name = 'bbox_head'
    roi_head = getattr(model, 'roi_head', None)
    det_head = _last(getattr(roi_head, 'bbox_head', None))
    if det_head is not None:
        det_head_name = 'roi_head.bbox_head'
    else:
        det_head = _last(getattr(model, 'bbox_head', None))
    # mmdet's RPN detector relabels every box 0 in its own loss (its head
    # has num_classes=1 whatever the data set), so its labels are not
    # checked against the head.
    is_rpn = any(cls.__name__ == 'RPN' for cls in type(model).__mro__)
    if det_head is not None and not is_rpn:
        det_classes = getattr(det_head, 'num_classes', None)
    return LabelSpace(
        seg_classes=seg_classes,
        ignore_index=ignore_index,
        det_classes=det_classes,
        det_head=det_head_name)


def check_student_labels(model: nn.Module,
                         data_samples: Optional[Sequence]) -> None:
    """:func:`check_labels` against :func:`student_label_space` of
    ``model``."""
    if data_samples:
        check_labels(data_samples, student_label_space(model))


def check_labels(data_samples: Sequence, space: LabelSpace) -> None:
    """Raise ``ValueError`` if a label of the batch is outside ``space``.

    Args:
        data_samples: the batch's ``SegDataSample`` (``gt_sem_seg``) or
            ``DetDataSample`` (``gt_instances.labels``) objects.
        space: the labels the heads accept.

    Raises:
        ValueError: naming the class count, the offending values and the
            files holding them.
    """
    if not data_samples:
        return
    if space.seg_classes is not None:
        with_maps = [s for s in data_samples if 'gt_sem_seg' in s]
        if with_maps:
            maps = [s.gt_sem_seg.data for s in with_maps]
            if not _in_range(maps, space.seg_classes, space.ignore_index):
                raise ValueError(
                    _seg_message(with_maps, maps, space))
    if space.det_classes is not None:
        with_boxes = [
            s for s in data_samples
            if 'gt_instances' in s and 'labels' in s.gt_instances
        ]
        if with_boxes:
            labels = [s.gt_instances.labels for s in with_boxes]
            if not _in_range(labels, space.det_classes, None):
                raise ValueError(
                    _det_message(with_boxes, labels, space))


def _in_range(tensors: List[torch.Tensor], num_classes: int,
              ignore_index: Optional[int]) -> bool:
    """Whether every value is in ``0..num_classes - 1`` or is
    ``ignore_index``, with one host sync.

    Per tensor, not over a concatenation: the copy would double the cost on
    the CPU; on a GPU either way is a few microseconds.
    """
    extremes = []
    for tensor in tensors:
        if tensor.numel() == 0:
            continue
        if ignore_index is not None:
            # 0 is always a valid class, so ignored pixels cannot fail.
            tensor = tensor.masked_fill(tensor == ignore_index, 0)
        extremes.append(torch.stack(torch.aminmax(tensor)))
    if not extremes:
        return True
    lows, highs = zip(*torch.stack(extremes).tolist())
    return min(lows) >= 0 and max(highs) < num_classes


def _bad_values(tensor: torch.Tensor, num_classes: int,
                ignore_index: Optional[int]) -> List[int]:
    return [
        v for v in torch.unique(tensor).tolist()
        if (v < 0 or v >= num_classes) and v != ignore_index
    ]


def _source(sample, keys: Tuple[str, ...], index: int) -> str:
    for key in keys:
        path = sample.metainfo.get(key)
        if path:
            return str(path)
    return f'sample {index} of the batch (no {"/".join(keys)} in metainfo)'


def _offenders(samples, tensors, num_classes, ignore_index, keys):
    found = []
    for i, (sample, tensor) in enumerate(zip(samples, tensors)):
        bad = _bad_values(tensor, num_classes, ignore_index)
        if bad:
            found.append((_source(sample, keys, i), bad))
    return found


def _listing(found) -> str:
    """One line per file: its offending values."""
    lines = [f'  {path}: {values}' for path, values in found[:MAX_LISTED]]
    if len(found) > MAX_LISTED:
        lines.append(f'  ... and {len(found) - MAX_LISTED} more in this '
                     'batch')
    return '\n'.join(lines)


def _seg_message(samples, maps, space: LabelSpace) -> str:
    k, ignore = space.seg_classes, space.ignore_index
    found = _offenders(samples, maps, k, ignore,
                       ('seg_map_path', 'img_path'))
    path, values = found[0]
    if ignore is None:
        skip, unlabelled = '', 'a valid class'
    else:
        skip = (f'; {ignore}, its ignore_index, marks pixels to skip')
        unlabelled = str(ignore)
    return (
        f'Segmentation label out of range: value {values[0]} in {path}, but '
        f'the student\'s {space.seg_head} has num_classes={k} (valid labels '
        f'0..{k - 1}{skip}). Label maps with values outside that range in '
        f'this batch:\n{_listing(found)}\n'
        f'Fix those label files ({unlabelled} for unlabelled pixels), or, if '
        f'the data set has more classes, set num_classes of the student\'s '
        f'and the teacher\'s heads to its class count; for a data set whose '
        f'label 0 means "unlabelled", set reduce_zero_label=True in its '
        f'config. The batch was not trained on.')


def _det_message(samples, labels, space: LabelSpace) -> str:
    k = space.det_classes
    found = _offenders(samples, labels, k, None, ('img_path', ))
    path, values = found[0]
    return (
        f'Detection label out of range: box label {values[0]} in {path}, but '
        f'the student\'s {space.det_head} has num_classes={k} (valid labels '
        f'0..{k - 1}). Images with such box labels in this batch:\n'
        f'{_listing(found)}\n'
        f'The data set\'s classes (metainfo=dict(classes=...)) and the '
        f'heads\' num_classes must agree: set num_classes of the student\'s '
        f'and the teacher\'s heads to the number of classes of the data set, '
        f'or give the data set the classes the heads were built for. The '
        f'batch was not trained on.')
