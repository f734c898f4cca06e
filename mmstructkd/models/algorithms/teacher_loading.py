"""Load a teacher's (or a model-zoo student's) weights, strictly.

A distillation run with a wrongly loaded teacher trains to the end and
teaches noise, so a checkpoint that does not fit the model is refused
*before* training starts: keys missing from the checkpoint, keys the model
does not have, and keys of another shape are each an error, and the message
names the checkpoint, the model config, the first keys with both shapes,
and the likely cause (a distillation checkpoint, the student's checkpoint,
another width or ``num_classes``).

The opt-outs are explicit: ``allow_mismatch`` lists key prefixes under which
anything may differ, ``strict=False`` turns missing and unexpected keys into
a warning; shapes that differ outside ``allow_mismatch`` are an error even
then (such weights cannot be loaded, only silently skipped), and so is a
checkpoint none of whose keys fit.
"""
import os.path as osp
from collections import OrderedDict
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

import torch
from mmengine.logging import print_log
from torch import nn

from ..state_dicts import checkpoint_state_dict

# Keys a checkpoint may lack without consequence: BatchNorm's step counter
# is only used when momentum is None, and older checkpoints omit it.
ALWAYS_OPTIONAL = ('num_batches_tracked', )
# Prefixes of the keys of a distillation checkpoint (SingleTeacherDistill's
# own, mmrazor's): not a model's checkpoint.
DISTILL_PREFIXES = ('architecture.', 'distiller.', 'teacher.', 'student.')
# How many keys an error message lists per kind.
SHOWN = 5


class TeacherCheckpointError(RuntimeError):
    """A checkpoint does not fit its model; the run has not started."""


def describe_model(cfg: Union[dict, nn.Module, str, None]) -> str:
    """How a model was given, for messages: its cfg_path or type (a string
    is taken as such a description already)."""
    if cfg is None:
        return 'the model'
    if isinstance(cfg, str):
        return cfg
    if isinstance(cfg, nn.Module):
        return f'a built {type(cfg).__name__}'
    if 'cfg_path' in cfg:
        return f'cfg_path {cfg["cfg_path"]!r}'
    return f'type {cfg.get("type")!r}'


def read_checkpoint(path: str, what: str = 'teacher_ckpt') -> Dict:
    """Read ``path`` (local file, URL, ``open-mmlab://``) onto the CPU.

    Uses mmengine's loader, which unpickles weights-only (see
    ``mmstructkd.utils``). A missing local file, a failed download and an
    unreadable file each raise with advice that fits the case.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    is_remote = '://' in path
    if not is_remote and not osp.isfile(path):
        raise FileNotFoundError(
            f'{what} {path!r} does not exist. The run has not started: fix '
            f'the path (or download the teacher checkpoint there) and start '
            f'again.')
    try:
        checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    except Exception as e:  # network and unpickling errors come in many types
        if is_remote:
            advice = f'download the file and point {what} at the local copy.'
        else:
            advice = ('the file exists but could not be read as a '
                      'checkpoint (cut short while it was copied or written, '
                      'another format, or a pickle holding more than '
                      'weights): replace it with a complete copy of the '
                      'checkpoint.')
        raise RuntimeError(
            f'could not load {what} {path!r}: {e}. The run has not started; '
            f'{advice}') from e
    if not isinstance(checkpoint, Mapping):
        raise TeacherCheckpointError(
            f'{what} {path!r} holds a {type(checkpoint).__name__}, not a '
            f'state dict (or a dict with one under "state_dict"). The run '
            f'has not started.')
    return checkpoint


def _shape(value) -> Optional[Tuple[int, ...]]:
    return tuple(value.shape) if torch.is_tensor(value) else None


def empty_load_report() -> Dict[str, list]:
    """The report of a model into which no checkpoint was loaded."""
    return dict(missing_keys=[], unexpected_keys=[], shape_mismatches=[],
                allowed_keys=[])


def compare_state_dicts(
        loaded: Mapping, expected: Mapping,
        allow_mismatch: Sequence[str] = ()) -> Dict[str, list]:
    """Sort the keys of a checkpoint against those of a model.

    Args:
        loaded: the checkpoint's state dict.
        expected: the model's state dict.
        allow_mismatch: key prefixes under which differences are allowed.

    Returns:
        ``missing_keys`` (in the model, not in the checkpoint),
        ``unexpected_keys`` (the other way round), ``shape_mismatches``
        (``(key, checkpoint shape, model shape)``), each without the keys
        under ``allow_mismatch``; ``allowed_keys``: the keys under
        ``allow_mismatch`` that differ in any of these ways; ``matched_keys``:
        the keys that will be loaded.
    """
    allow_mismatch = tuple(allow_mismatch)

    def allowed(key):
        return bool(allow_mismatch) and key.startswith(allow_mismatch)

    report = dict(missing_keys=[], unexpected_keys=[], shape_mismatches=[],
                  allowed_keys=[], matched_keys=[])
    for key, value in expected.items():
        if key not in loaded:
            if key.rsplit('.', 1)[-1] in ALWAYS_OPTIONAL:
                continue
            report['allowed_keys' if allowed(key) else 'missing_keys'].append(
                key)
            continue
        shape_ckpt, shape_model = _shape(loaded[key]), _shape(value)
        if shape_ckpt != shape_model:
            if allowed(key):
                report['allowed_keys'].append(key)
            else:
                report['shape_mismatches'].append(
                    (key, shape_ckpt, shape_model))
            continue
        report['matched_keys'].append(key)
    for key in loaded:
        if key not in expected:
            report['allowed_keys' if allowed(key) else 'unexpected_keys'
                   ].append(key)
    return report


def _likely_cause(loaded: Mapping, report: Dict[str, list],
                  student: Optional[nn.Module]) -> str:
    """A sentence on what the checkpoint probably is, or ''."""
    keys = list(loaded)
    distill_keys = [k for k in keys if k.startswith(DISTILL_PREFIXES)]
    if keys and len(distill_keys) * 2 >= len(keys):
        prefixes = sorted({k.split('.', 1)[0] + '.' for k in distill_keys})
        return (f'This looks like a distillation checkpoint (its keys start '
                f'with {prefixes}), not a model checkpoint: export the '
                f'student with tools/model_converters/export_student.py, or '
                f'point at the teacher\'s own checkpoint.')
    if student is not None:
        student_state = student.state_dict()
        fits_student = not any(compare_state_dicts(
            loaded, student_state)[kind] for kind in (
                'missing_keys', 'unexpected_keys', 'shape_mismatches'))
        if fits_student:
            return ('Its keys and shapes are exactly those of the student '
                    '(architecture): this is the student\'s checkpoint, not '
                    'the teacher\'s.')
    if report['shape_mismatches'] and not report['missing_keys'] and \
            not report['unexpected_keys']:
        return ('Same layers, other sizes: the checkpoint is of a model with '
                'other widths or another num_classes than this config (or '
                'the config\'s cfg_options change them).')
    return ('Is it the checkpoint of this config (and not one of another '
            'model, or of the student)?')


def _format_report(report: Dict[str, list]) -> str:
    lines = []
    if report['shape_mismatches']:
        shown = ', '.join(
            f'{k} {list(c) if c is not None else None} vs '
            f'{list(m) if m is not None else None}'
            for k, c, m in report['shape_mismatches'][:SHOWN])
        lines.append(f'  shape differs (checkpoint vs model): {shown}')
    for kind, label in (('missing_keys', 'missing in the checkpoint'),
                        ('unexpected_keys', 'not in the model')):
        if report[kind]:
            lines.append(f'  {label}: {report[kind][:SHOWN]}')
    return '\n'.join(lines)


def load_model_checkpoint(model: nn.Module,
                          path: str,
                          strict: bool = True,
                          allow_mismatch: Sequence[str] = (),
                          model_desc: str = 'the model',
                          student: Optional[nn.Module] = None,
                          what: str = 'teacher_ckpt',
                          options: Optional[Tuple[str, str]] = (
                              'teacher_ckpt_strict',
                              'teacher_ckpt_allow_mismatch')
                          ) -> Dict[str, list]:
    """Load ``path`` into ``model``, refusing a checkpoint that does not fit.

    The checkpoint's state dict is its ``state_dict`` entry if it has one,
    else the checkpoint itself; a leading ``module.`` (DDP) is dropped from
    its keys. BatchNorm's ``num_batches_tracked`` may be missing.

    Args:
        model: the model to load into (the teacher).
        path: local path, URL or ``open-mmlab://`` name.
        strict: if True (default), keys missing from the checkpoint and keys
            the model does not have are an error. If False they are logged
            as a warning and left out (missing weights keep their initial
            values).
        allow_mismatch: key prefixes (e.g. ``('auxiliary_head.',)``) under
            which the checkpoint may differ from the model in any way, even
            when strict: those keys are loaded when they fit and otherwise
            left out, with a log line.
        model_desc: how the model was given, e.g. ``"cfg_path '...'"``
            (see :func:`describe_model`; for the messages).
        student: the student, to recognise its checkpoint in the message.
        what: the option ``path`` came from (for the messages).
        options: the names of the options that set ``strict`` and
            ``allow_mismatch``, suggested in the error; None when the caller
            offers no opt-out.

    Returns:
        The report of :func:`compare_state_dicts` (without
        ``matched_keys``).

    Raises:
        FileNotFoundError: a local ``path`` does not exist.
        RuntimeError: the file cannot be read or downloaded.
        TeacherCheckpointError: the checkpoint does not fit: missing or
            unexpected keys (strict), shapes that differ outside
            ``allow_mismatch`` (always), no key that fits (always).
    """
    loaded = checkpoint_state_dict(read_checkpoint(path, what))
    expected = model.state_dict()
    report = compare_state_dicts(loaded, expected, allow_mismatch)
    matched = report.pop('matched_keys')
    errors = report['shape_mismatches'] or not matched or (
        strict and (report['missing_keys'] or report['unexpected_keys']))
    counts = (f'{len(report["missing_keys"])} keys missing in the '
              f'checkpoint, {len(report["unexpected_keys"])} not in the '
              f'model, {len(report["shape_mismatches"])} of another shape '
              f'({len(matched)} of the model\'s {len(expected)} fit)')
    where = f'{what} {path!r} does not fit the model built from ' \
            f'{model_desc}'
    if errors:
        opt_out = ''
        # No opt-out helps a checkpoint of which nothing fits.
        if options is not None and matched:
            strict_option, allow_option = options
            opt_out = (' If only part of the checkpoint is meant to load, '
                       'list the key prefixes allowed to differ in '
                       f'{allow_option} (e.g. (\'auxiliary_head.\',))')
            opt_out += ('.' if not strict or report['shape_mismatches'] else
                        f', or set {strict_option}=False to load what fits '
                        f'with a warning.')
        raise TeacherCheckpointError(
            f'{where}: {counts}.\n{_format_report(report)}\n'
            f'{_likely_cause(loaded, report, student)} The run has not '
            f'started.{opt_out}')
    if report['missing_keys'] or report['unexpected_keys']:
        print_log(
            f'{where} (not strict: loading what fits): {counts}.\n'
            f'{_format_report(report)}', logger='current', level=30)
    if report['allowed_keys']:
        print_log(
            f'{what} {path}: {len(report["allowed_keys"])} keys under the '
            f'allowed prefixes {tuple(allow_mismatch)} differ and were not '
            f'loaded (e.g. {report["allowed_keys"][:SHOWN]}).',
            logger='current')
    to_load = OrderedDict((k, loaded[k]) for k in matched)
    if hasattr(loaded, '_metadata'):
        to_load._metadata = loaded._metadata
    # Everything left out is accounted for above, so strict=False here only
    # skips what was already reported (or is allowed to be missing).
    model.load_state_dict(to_load, strict=False)
    print_log(f'Loaded {what} {path} ({len(matched)} keys)',
              logger='current')
    return report


def load_teacher_checkpoint(teacher: nn.Module,
                            path: str,
                            strict: bool = True,
                            allow_mismatch: Sequence[str] = (),
                            teacher_cfg: Union[dict, nn.Module, str,
                                               None] = None,
                            student: Optional[nn.Module] = None,
                            options: Tuple[str, str, str] = (
                                'teacher_ckpt', 'teacher_ckpt_strict',
                                'teacher_ckpt_allow_mismatch')
                            ) -> Dict[str, list]:
    """Load ``teacher_ckpt`` into the teacher (see
    :func:`load_model_checkpoint`; the options are ``SingleTeacherDistill``'s
    ``teacher_ckpt_strict`` and ``teacher_ckpt_allow_mismatch``).

    ``student`` only serves the message: a checkpoint that fits it exactly
    is named as the student's. ``options`` are the names of the three
    options in the messages (another teacher's, with several).
    """
    return load_model_checkpoint(
        teacher, path, strict=strict, allow_mismatch=allow_mismatch,
        model_desc=describe_model(teacher_cfg), student=student,
        what=options[0], options=tuple(options[1:]))


def load_pretrained_student(student: nn.Module,
                            architecture: Union[dict, nn.Module]) -> None:
    """Load the model-zoo weights of ``architecture=dict(cfg_path=...,
    pretrained=True)`` into the student, strictly, as mmrazor does; nothing
    when it is not ``pretrained``.

    The student is then marked initialised, so the Runner's
    ``init_weights`` does not overwrite the weights (as
    ``mmengine.hub.get_model`` does).
    """
    from ..task_models import model_zoo_checkpoint
    url = model_zoo_checkpoint(architecture, 'architecture')
    if url is None:
        return
    load_model_checkpoint(
        student, url, model_desc=describe_model(architecture),
        what='the model-zoo weights of architecture (pretrained=True)',
        options=None)
    student._is_init = True
