"""What each config is measured with: task, input size, batch, steps,
and the overhead target it is held to."""
import os.path as osp

from ..config_lists import REPO_ROOT, TOY_DIR

# The toy segmentation pictures are used uncropped at make_toy_data.py's
# default side.
TOY_SEG_SIZE = 96
# Model-zoo sizes on CPU: a quarter of a Cityscapes crop's pixels, and a
# common COCO picture size.
CPU_SEG_SCALE = 0.5
CPU_COCO_SIZE = (512, 512)
# Smallest training batch per task on CPU: PSPNet's 1x1 pyramid-pooling
# branch has a BatchNorm, which cannot train on one value per channel.
CPU_MODEL_ZOO_BATCH = dict(seg=2, det=1)
# The targets for (c)/(b), by config name prefix (first match wins): the
# methods whose loss is a few element-wise operations on tensors the step
# already has are held to 1.05, every other method to 1.10 (the adversarial
# configs' critic update included; it is also reported apart).
TARGETS = (('cwd_', 1.05), ('skd_pi_', 1.05), ('pkd_', 1.05),
           ('dist_', 1.05))
DEFAULT_TARGET = 1.10
# The three step kinds: (a) student, (b) + bare teacher forward, (c) the
# distillation step.
CONDITIONS = ('a', 'b', 'c')
# Measured and warm-up steps: (toy configs or CUDA, model zoo on CPU).
STEP_DEFAULTS = dict(steps=(20, 5), warmup=(3, 1))


def crop_size(cfg, task):
    """[H, W] the config trains at: the crop (segmentation) or the Resize
    scale (detection; mmdet writes scales as (w, h))."""
    if task == 'seg':
        return list(cfg.get('crop_size') or (TOY_SEG_SIZE, TOY_SEG_SIZE))
    for transform in cfg.train_pipeline:
        if transform['type'].endswith('Resize') and 'scale' in transform:
            width, height = transform['scale']
            return [height, width]
    raise ValueError('no Resize with a scale in train_pipeline')


def target_of(name):
    for prefix, target in TARGETS:
        if name.startswith(prefix):
            return target
    return DEFAULT_TARGET


def resolve(config, args):
    """What one config is measured with: task, size, batch, steps, mixed
    precision."""
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    task = 'det' if cfg.get('default_scope') == 'mmdet' else 'seg'
    toy = osp.abspath(config).startswith(TOY_DIR + osp.sep)
    full_size = toy or args.device == 'cuda'
    crop = crop_size(cfg, task)
    column = 0 if full_size else 1  # of STEP_DEFAULTS
    if args.size:
        size = list(args.size)
    elif full_size:
        size = crop
    elif task == 'seg':
        size = [int(side * CPU_SEG_SCALE) for side in crop]
    else:
        size = list(CPU_COCO_SIZE)
    name = osp.splitext(osp.basename(config))[0]
    return dict(
        config=osp.relpath(osp.abspath(config), REPO_ROOT),
        name=name,
        set='toy' if toy else 'model-zoo',
        task=task,
        crop_size=crop,
        size=size,
        batch=args.batch or (cfg.train_dataloader.batch_size
                             if full_size else CPU_MODEL_ZOO_BATCH[task]),
        steps=args.steps or STEP_DEFAULTS['steps'][column],
        warmup=args.warmup if args.warmup is not None else
        STEP_DEFAULTS['warmup'][column],
        amp=bool(getattr(args, 'amp', False)),
        target=target_of(name))

