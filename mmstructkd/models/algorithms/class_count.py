"""``num_classes`` of a distillation algorithm: one class count for the
student and every teacher.

A data set with another number of classes than the configs were written
for changes every classifying head of the student and of the teachers
(an mmseg ``decode_head`` and ``auxiliary_head``, an mmdet ``bbox_head``,
``roi_head.bbox_head``, ``mask_head``, ...). With ``num_classes=K`` on the
algorithm, :func:`set_num_classes` writes K into every ``num_classes`` key
of their model configs before they are built, and the holistic critic
infers its input channels from the teacher (``adversarial_critic``): the
class count is written once, in the distillation config.
"""
import copy
from typing import Any, List, Optional, Union

from torch import nn

from ..task_models import load_model_config

KEY = 'num_classes'
# Heads whose num_classes is not the data set's class count, left as they
# are: mmdet's RPN head scores "object or not" whatever the data set
# (num_classes=1, class-agnostic proposals); setting it to K would change
# what the proposals mean and break its pretrained weights.
CLASS_AGNOSTIC_HEADS = ('rpn_head', )


def check_num_classes(num_classes: Any) -> Optional[int]:
    """``num_classes`` of the algorithm: None (unset) or a positive int.

    Raises:
        ValueError: anything else (a bool, a string, 0, a negative int).
    """
    if num_classes is None:
        return None
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) \
            or num_classes < 1:
        raise ValueError(
            f'num_classes of the distillation model must be a positive int '
            f'(the number of classes of your data set, set in the heads of '
            f'the student and of every teacher) or None (keep the configs\' '
            f'own counts), got {num_classes!r} '
            f'({type(num_classes).__name__}).')
    return num_classes


def class_count_paths(cfg: Any, prefix: str = '') -> List[str]:
    """The dotted paths of every ``num_classes`` key in the model config
    ``cfg``, searched recursively through dicts and lists (a list item by
    its index, ``auxiliary_head.0.num_classes``), skipping
    :data:`CLASS_AGNOSTIC_HEADS`."""
    paths = []
    if isinstance(cfg, dict):
        for key, value in cfg.items():
            path = f'{prefix}.{key}' if prefix else str(key)
            if key in CLASS_AGNOSTIC_HEADS:
                continue
            if key == KEY:
                paths.append(path)
            else:
                paths.extend(class_count_paths(value, path))
    elif isinstance(cfg, (list, tuple)):
        for i, item in enumerate(cfg):
            paths.extend(class_count_paths(item, f'{prefix}.{i}'))
    return paths


def _no_class_count(role: str, where: str, model_cfg: dict,
                    num_classes: int) -> ValueError:
    keys = sorted(str(k)
                  for k in model_cfg) if isinstance(model_cfg, dict) else []
    return ValueError(
        f'num_classes={num_classes}: {role} ({where}) has no num_classes '
        f'key in its model config. It was looked for recursively under '
        f'every key of the model (top-level keys: {keys}; e.g. '
        f'decode_head, auxiliary_head, bbox_head, roi_head.bbox_head, '
        f'mask_head), skipping {list(CLASS_AGNOSTIC_HEADS)}. Set the class '
        f'count in that config yourself and leave num_classes of the '
        f'distillation model unset.')


def set_num_classes(cfg: Union[dict, nn.Module], num_classes: Optional[int],
                    role: str) -> Union[dict, nn.Module]:
    """``cfg`` (a student's or teacher's model config, see
    ``build_task_model``) with every ``num_classes`` key of its model set
    to ``num_classes`` (:func:`class_count_paths`); ``cfg`` itself when
    ``num_classes`` is None. ``cfg`` is not modified.

    A ``cfg_path`` config keeps its ``cfg_path`` (so ``pretrained`` and the
    messages still name it): the counts are added to its ``cfg_options``
    (``model.decode_head.num_classes``, ...), after the ones given there.

    Args:
        role: ``'architecture'``, ``'teacher'``, ``"teachers['name']"``,
            for messages.

    Raises:
        ValueError: ``num_classes`` is not a positive int; ``cfg`` is an
            already built model; its model config has no ``num_classes``.
    """
    num_classes = check_num_classes(num_classes)
    if num_classes is None:
        return cfg
    if isinstance(cfg, nn.Module):
        raise ValueError(
            f'num_classes={num_classes}: {role} is an already built '
            f'{type(cfg).__name__}, whose heads cannot be changed; give its '
            f'config instead, or leave num_classes unset.')
    if 'cfg_path' in cfg:
        options = dict(cfg.get('cfg_options') or {})
        full_cfg, _ = load_model_config(cfg['cfg_path'], False, options)
        model_cfg = full_cfg.get('model', {})
        paths = class_count_paths(model_cfg)
        if not paths:
            raise _no_class_count(
                role, f'the model of cfg_path {cfg["cfg_path"]!r}', model_cfg,
                num_classes)
        options.update({f'model.{path}': num_classes for path in paths})
        cfg = dict(cfg)
        cfg['cfg_options'] = options
        return cfg
    cfg = copy.deepcopy(cfg)
    paths = class_count_paths(cfg)
    if not paths:
        raise _no_class_count(role, f'model type {cfg.get("type")!r}', cfg,
                              num_classes)
    for path in paths:
        *parents, key = path.split('.')
        node = cfg
        for part in parents:
            node = node[int(part)] if isinstance(node, (list, tuple)) \
                else node[part]
        node[key] = num_classes
    return cfg
