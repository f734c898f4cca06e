"""See what is distilled: one picture per distillation term of a checkpoint.

Builds the distillation algorithm of CONFIG (the teacher from its
``teacher_ckpt`` or ``--teacher-ckpt``), loads the student (and connectors,
critic) from CKPT, runs IMG through the config's test pipeline, records the
tensors the distiller feeds its losses, and draws for each loss of
``loss_forward_mappings`` the picture matching its type, teacher next to
student:

================================  ==========================================
loss                              picture
================================  ==========================================
``ChannelWiseDivergence``         per-channel softmax over positions (the
                                  channels that differ most; per FPN level)
``PairWiseLoss``                  affinity of the node at ``--node`` with
                                  every node
``ContextLoss``                   relation row of the position at ``--node``
                                  and the KL of every row
``BoundaryLoss``                  boundary map of every backbone stage
``StructuralSimilarityLoss``      rescaled maps and SSIM map per FPN level
``PixelWiseLoss``                 class maps and per-pixel KL
``AdversarialGeneratorLoss``      the critic's scores over training, from
                                  ``--scalars`` (its log)
================================  ==========================================

plus ``predictions`` (the input and the teacher's and student's
predictions). The pictures go through mmengine's visualizer backends: PNGs
under ``--out-dir`` (``<name>_<iteration>.png``), and TensorBoard too with
``--backend tensorboard``.

Several teachers (``MultiTeacherDistill``): every teacher is loaded (from
its ``model.teachers.<name>.ckpt``, or ``--teacher-ckpt NAME=PATH``, given
once per teacher to replace) and runs with its own recorders; each loss's
picture shows the teacher its mapping names (``teacher='name'``, named in
the title), and ``predictions`` has one panel per teacher, labelled with
its name, next to the student's.

Usage:
    python tools/visualize_distill.py CONFIG CKPT IMG [--out-dir DIR]
        [--teacher-ckpt PATH] [--node Y X] [--channels N] [--losses ...]
        [--scalars WORK_DIR_OR_SCALARS_JSON] [--backend tensorboard]
        [--cfg-options k=v ...]
    several teachers:
    python tools/visualize_distill.py CONFIG CKPT IMG
        [--teacher-ckpt NAME=PATH [--teacher-ckpt NAME=PATH ...]] ...
"""
import argparse
import copy
import os
import os.path as osp
import sys
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.visualization import Visualizer

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import mmstructkd  # noqa: E402,F401  (registries, weights-only loading)
from mmstructkd.models.losses.adversarial import \
    frozen_discriminator_scores  # noqa: E402
from mmstructkd.models.state_dicts import \
    checkpoint_state_dict  # noqa: E402
from mmstructkd.registry import MODELS  # noqa: E402
from mmstructkd.visualization import (VisContext, load_scalars,  # noqa: E402
                                      paint_loss, paint_predictions)

STUDENT_PREFIX = 'architecture.'
BACKENDS = ('local', 'tensorboard')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Draw what each distillation loss compares, teacher vs '
        'student, for one image')
    parser.add_argument('config', help='distillation config')
    parser.add_argument('checkpoint',
                        help='checkpoint of tools/train.py (student, '
                        'connectors, critic), or a plain student checkpoint')
    parser.add_argument('img', help='image file')
    parser.add_argument('--out-dir', help='where the PNGs go (default: '
                        'work_dirs/visualize_distill/<config name>)')
    parser.add_argument('--teacher-ckpt', action='append',
                        metavar='PATH | NAME=PATH',
                        help="teacher weights (default: the config's "
                        'model.teacher_ckpt); with several teachers '
                        '(MultiTeacherDistill) NAME=PATH, repeated for each '
                        "teacher to replace (default: the config's "
                        'model.teachers.NAME.ckpt)')
    parser.add_argument('--node', type=float, nargs=2, metavar=('Y', 'X'),
                        help='pixel (row, column) of the network input whose '
                        'affinities / relations are drawn (default: the '
                        'centre)')
    parser.add_argument('--channels', type=int, default=4,
                        help='channels shown for channel-wise distillation '
                        'of one map (those that differ most)')
    parser.add_argument('--losses', nargs='+',
                        help='only these distill_losses (default: all)')
    parser.add_argument('--scalars',
                        help='scalars.json of the training run (or its work '
                        "dir), to plot the critic's scores over training")
    parser.add_argument('--backend', action='append', choices=BACKENDS,
                        default=[],
                        help='visualizer backend(s) besides the PNGs; '
                        "'tensorboard' needs the tensorboard package")
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='score threshold of the boxes drawn for '
                        'detectors')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value')
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------
# Model and data


def teacher_names(cfg: Config) -> Optional[List[str]]:
    """The teachers' names of a multi-teacher config; None for one
    teacher."""
    if str(cfg.model.get('type', '')).endswith('MultiTeacherDistill'):
        return list(cfg.model.get('teachers') or {})
    return None


def set_teacher_ckpts(cfg: Config, values: Optional[List[str]]) -> None:
    """Point the config at the ``--teacher-ckpt`` values: one PATH for one
    teacher (``model.teacher_ckpt``), NAME=PATH per teacher to replace for
    several (``model.teachers.NAME.ckpt``).

    Raises:
        ValueError: several values for one teacher; for several teachers a
            value not of the form NAME=PATH, an unknown or repeated name
            (the message names the teachers).
    """
    if not values:
        return
    names = teacher_names(cfg)
    if names is None:
        if len(values) > 1:
            raise ValueError(
                f'--teacher-ckpt given {len(values)} times, but '
                f'{cfg.filename} has one teacher: give one PATH.')
        cfg.model.teacher_ckpt = values[0]
        return
    form = ' '.join(f'--teacher-ckpt {name}=PATH' for name in names)
    seen = set()
    for value in values:
        name, sep, path = value.partition('=')
        if not sep or not path or name not in names:
            what = (f'{name!r} is not one of them' if sep and path else
                    'write NAME=PATH')
            raise ValueError(
                f'--teacher-ckpt {value!r}: {cfg.filename} is a '
                f'multi-teacher config (teachers {names}); {what} (e.g. '
                f'{form}).')
        if name in seen:
            raise ValueError(
                f'--teacher-ckpt: teacher {name!r} given twice (teachers: '
                f'{names}).')
        seen.add(name)
        cfg.model.teachers[name].ckpt = path


def build_algorithm(cfg: Config, checkpoint: str, device: str):
    """The algorithm with its teacher loaded (at build) and the student,
    connectors and critic from ``checkpoint``; returns it with the
    checkpoint's iteration (0 if unknown)."""
    from mmengine.runner.checkpoint import CheckpointLoader
    if not str(cfg.model.get('type', '')).endswith(
            ('SingleTeacherDistill', 'MultiTeacherDistill')):
        raise ValueError(
            f'{cfg.filename}: model.type is {cfg.model.get("type")!r}; this '
            f'tool needs a distillation config (SingleTeacherDistill or '
            f'MultiTeacherDistill).')
    algorithm = MODELS.build(cfg.model)
    if not osp.isfile(checkpoint) and '://' not in checkpoint:
        raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist.')
    # mmengine's loader; weights-only unpickling (see mmstructkd.utils).
    ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    state = checkpoint_state_dict(ckpt)
    if any(k.startswith(STUDENT_PREFIX) for k in state):
        target, what = algorithm, 'distillation checkpoint'
    else:
        # A plain (e.g. exported) student checkpoint.
        target, what = algorithm.architecture, 'student checkpoint'
        if not set(state) & set(target.state_dict()):
            raise KeyError(
                f'{checkpoint}: no student weights in it (expected keys '
                f'starting with {STUDENT_PREFIX!r}, as tools/train.py '
                f'writes, or the keys of a plain student model).')
    missing, unexpected = target.load_state_dict(state, strict=False)
    if missing or unexpected:
        print(f'warning: {what} {checkpoint}: {len(missing)} missing keys '
              f'(e.g. {list(missing)[:3]}), {len(unexpected)} unexpected '
              f'(e.g. {list(unexpected)[:3]})')
    iteration = int(ckpt.get('meta', {}).get('iter', 0) or 0) \
        if isinstance(ckpt.get('meta'), dict) else 0
    return algorithm.to(device).eval(), iteration


def test_pipeline(cfg: Config) -> list:
    """The test transforms of the config, without annotation loading (an
    arbitrary image has none)."""
    dataset_cfg = cfg.test_dataloader.dataset
    pipeline = dataset_cfg.get('pipeline') or cfg.get('test_pipeline')
    if pipeline is None:
        raise KeyError(f'{cfg.filename}: no test_dataloader.dataset.pipeline'
                       ' (or test_pipeline) to prepare the image with.')
    return [copy.deepcopy(t) for t in pipeline
            if 'LoadAnnotations' not in str(t.get('type', ''))]


def prepare_data(cfg: Config, img: str) -> dict:
    """One image through the test transforms: ``inputs`` (C, H, W uint8,
    BGR as loaded) and ``data_samples``."""
    if not osp.isfile(img):
        raise FileNotFoundError(f'image {img!r} does not exist.')
    pipeline = Compose(test_pipeline(cfg))
    # img_id: mmdet's PackDetInputs expects it among the meta keys.
    return pipeline(dict(img_path=img, img_id=0))


def dataset_meta(cfg: Config) -> dict:
    """``classes`` and ``palette`` of the config's test data set (its
    class's METAINFO, updated with the config's ``metainfo``)."""
    from mmengine.registry import DATASETS
    dataset_cfg = cfg.test_dataloader.dataset
    meta = {}
    dataset_cls = DATASETS.get(dataset_cfg.type)
    if dataset_cls is not None:
        meta.update(copy.deepcopy(getattr(dataset_cls, 'METAINFO', {})))
    meta.update(dataset_cfg.get('metainfo') or {})
    return meta


def run_networks(algorithm, batch: dict):
    """Predict with every teacher and the student while their recorders
    (each teacher its own, ``teacher_recorders_of(name)``) record.

    Returns the preprocessed input tensor, teacher name (None for the only
    teacher) -> its predicted sample, and the student's. The records stay in
    the recorders until ``reset_records``.
    """
    distiller = algorithm.distiller
    processed = algorithm.data_preprocessor(batch, False)
    inputs, samples = processed['inputs'], processed['data_samples']
    managers, teacher_samples = [], {}
    with torch.no_grad():
        # predict fills the samples in place: each network gets a copy.
        for name, frozen in algorithm.frozen_teachers.items():
            managers.append(distiller.teacher_recorders_of(name))
            with managers[-1]:
                teacher_samples[name] = frozen.model(
                    inputs, copy.deepcopy(samples), mode='predict')[0]
        with distiller.student_recorders:
            student_out = algorithm.student(
                inputs, copy.deepcopy(samples), mode='predict')
    for manager in managers + [distiller.student_recorders]:
        manager.check_recorded()
    return inputs, teacher_samples, student_out[0]


def loss_inputs(algorithm, inputs: torch.Tensor,
                names: Optional[List[str]] = None) -> Dict[str, dict]:
    """The keyword arguments each distillation loss receives, as in
    training (recorded tensors, connectors applied, plus the critic and
    the image where the loss takes them)."""
    distiller = algorithm.distiller
    context = dict(image=inputs)
    if algorithm.discriminator is not None:
        context['discriminator'] = algorithm.discriminator
    unknown = set(names or []) - set(distiller.loss_forward_mappings)
    if unknown:
        raise KeyError(f'--losses {sorted(unknown)}: the distiller has '
                       f'{sorted(distiller.loss_forward_mappings)}.')
    out = {}
    with torch.no_grad():
        for name in distiller.loss_forward_mappings:
            if names and name not in names:
                continue
            out[name] = distiller.loss_arguments(name, **context)
    return out


def critic_scores(algorithm,
                  image: torch.Tensor) -> Optional[Tuple[float, float]]:
    """D(teacher), D(student) of the checkpoint's critic on this image."""
    if algorithm.discriminator is None:
        return None
    spec = algorithm.discriminator_inputs
    distiller = algorithm.distiller
    with torch.no_grad():
        return tuple(
            float(frozen_discriminator_scores(
                algorithm.discriminator, distiller.get_record(spec[arg]),
                image)[0]) for arg in ('preds_T', 'preds_S'))


def recorder_sources(algorithm, mapping: dict) -> Dict[str, str]:
    """Argument -> the module its recorder hooks (in the network, the
    teacher its mapping names, that it reads)."""
    distiller = algorithm.distiller
    sources = {}
    for arg, spec in mapping.items():
        if not isinstance(spec, dict) or 'recorder' not in spec:
            continue
        manager = distiller.recorders_for(spec)
        sources[arg] = manager[spec['recorder']].source
    return sources


def mapped_teachers(mapping: dict) -> Tuple[str, ...]:
    """The named teachers whose tensors a loss mapping reads (none with one
    teacher), in mapping order."""
    names = [spec.get('teacher') for spec in mapping.values()
             if isinstance(spec, dict) and not spec.get('from_student', True)]
    return tuple(dict.fromkeys(n for n in names if n is not None))


# ---------------------------------------------------------------------------
# Output


def build_visualizer(out_dir: str, backends: List[str]) -> Visualizer:
    """mmengine's visualizer writing PNGs to ``out_dir`` (and TensorBoard
    events to ``out_dir/tensorboard`` when asked)."""
    vis_backends = [dict(type='LocalVisBackend', save_dir=out_dir,
                         img_save_dir='')]
    if 'tensorboard' in backends:
        try:
            import torch.utils.tensorboard  # noqa: F401
        except ImportError as e:
            raise SystemExit(
                f'--backend tensorboard: TensorBoard is not importable '
                f'({e}). Install it (pip install tensorboard) or leave the '
                f'option out to write PNGs only.') from None
        vis_backends.append(dict(type='TensorboardVisBackend',
                                 save_dir=osp.join(out_dir, 'tensorboard')))
    name = f'visualize_distill_{os.getpid()}_{time.monotonic_ns()}'
    return Visualizer.get_instance(name, vis_backends=vis_backends)


def main(argv=None) -> List[str]:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    try:
        set_teacher_ckpts(cfg, args.teacher_ckpt)
    except ValueError as e:
        raise SystemExit(f'error: {e}') from None
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    out_dir = args.out_dir or osp.join(
        'work_dirs', 'visualize_distill',
        osp.splitext(osp.basename(args.config))[0])
    os.makedirs(out_dir, exist_ok=True)
    visualizer = build_visualizer(out_dir, args.backend)

    algorithm, iteration = build_algorithm(cfg, args.checkpoint, args.device)
    data = prepare_data(cfg, args.img)
    batch = pseudo_collate([data])
    inputs, teacher_samples, student_sample = run_networks(algorithm, batch)
    distiller = algorithm.distiller
    for name, frozen in algorithm.frozen_teachers.items():
        if name is not None:  # several teachers: say each one ran
            recorded = sorted(distiller.teacher_recorders_of(name).recorders)
            print(f'teacher {name!r} ({frozen.ckpt or "random weights"}): '
                  f'predicted, recorded {recorded}')
    image = data['inputs'].permute(1, 2, 0).numpy()[..., ::-1]  # BGR->RGB
    frame = tuple(inputs.shape[-2:])
    point = tuple(args.node) if args.node else (image.shape[0] / 2,
                                                image.shape[1] / 2)
    meta = dataset_meta(cfg)
    ctx = VisContext(
        image=np.ascontiguousarray(image),
        frame=frame,
        point=point,
        class_names=tuple(meta.get('classes', ())),
        palette=tuple(meta.get('palette', ())),
        num_channels=args.channels,
        scalars=load_scalars(args.scalars) if args.scalars else None)

    figures = [paint_predictions(ctx, teacher_samples, student_sample,
                                 args.score_thr)]
    ctx.critic_scores = critic_scores(algorithm, inputs)
    if ctx.critic_scores is not None:
        print('critic on this image: D(teacher)={:.4g} D(student)={:.4g}'
              .format(*ctx.critic_scores))
    for name, kwargs in loss_inputs(algorithm, inputs, args.losses).items():
        mapping = distiller.loss_forward_mappings[name]
        ctx.sources = recorder_sources(algorithm, mapping)
        ctx.teachers = mapped_teachers(mapping)
        loss = distiller.distill_losses[name]
        drawn = paint_loss(name, loss, kwargs, ctx)
        if not drawn:
            why = ('no --scalars log with critic scores'
                   if type(loss).__name__ == 'AdversarialGeneratorLoss'
                   else 'no picture for this loss type')
            print(f'{name} ({type(loss).__name__}): skipped, {why}')
        figures += drawn
    distiller.reset_records()

    written = []
    for figure in figures:
        visualizer.add_image(figure.name, figure.image, step=iteration)
        written.append(osp.join(out_dir, f'{figure.name}_{iteration}.png'))
        print(f'{figure.name}: {written[-1]}')
    visualizer.close()
    return written


if __name__ == '__main__':
    main()
