"""Every detection model-zoo distillation config builds its algorithm (random
weights: the teacher checkpoints are model-zoo URLs we do not download here)
and one training step on a tiny random batch gives finite losses."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

import mmstructkd  # noqa: F401
# Registers StructuralSimilarityLoss even before the package exports it.
import mmstructkd.models.losses.ssim  # noqa: F401
from mmstructkd.registry import MODELS
from mmstructkd.benchmarks.random_batches import det_batch

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DET_CONFIGS = sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs', '*', '*_coco.py')))
# Config name -> (detector type, distillation losses it must log). Other
# *_coco.py configs get the generic checks only.
EXPECTED = {
    'cwd_fpn_retinanet-r101_retinanet-r50_8xb2-1x_coco.py':
    ('RetinaNet', [f'distill.loss_cwd_fpn{i}' for i in range(5)]),
    'cwd_fpn_gfl-r101_gfl-r50_8xb2-1x_coco.py':
    ('GFL', [f'distill.loss_cwd_fpn{i}' for i in range(5)]),
    'ssim_fpn_faster-rcnn-r101_faster-rcnn-r50_8xb2-1x_coco.py':
    ('FasterRCNN', ['distill.loss_ssim_fpn']),
    'skd_pa-fpn_fcos-r101-caffe_fcos-r50-caffe_8xb2-1x_coco.py':
    ('FCOS', ['distill.loss_pa_fpn']),
    'pkd_fpn_faster-rcnn-r101_faster-rcnn-r50_8xb2-2x_coco.py':
    ('FasterRCNN', [f'distill.loss_pkd_fpn{i}' for i in range(4)]),
    'pkd_fpn_retinanet-x101_retinanet-r50_8xb2-2x_coco.py':
    ('RetinaNet', [f'distill.loss_pkd_fpn{i}' for i in range(4)]),
    'pkd_fpn_fcos-x101_retinanet-r50_8xb2-1x_coco.py':
    ('RetinaNet', [f'distill.loss_pkd_fpn{i}' for i in range(4)]),
    # mmcv's DeformConv2d (teacher backbone, both heads) has a CPU kernel
    # (forward and backward) in mmcv 2.1: this one steps here too.
    'pkd_fpn_reppoints-x101-dcn_reppoints-r50_8xb2-2x_coco.py':
    ('RepPointsDetector', [f'distill.loss_pkd_fpn{i}' for i in range(4)]),
    'pkd_fpn_mask-rcnn-swin-s_retinanet-r50_8xb2-2x_coco.py':
    ('RetinaNet', [f'distill.loss_pkd_fpn{i}' for i in range(4)]),
    'mgd_fpn_retinanet-x101_retinanet-r50_8xb2-2x_coco.py':
    ('RetinaNet', [f'distill.loss_mgd_fpn{i}' for i in range(5)]),
    'fbkd_fpn_faster-rcnn-r101_faster-rcnn-r50_8xb2-1x_coco.py':
    ('FasterRCNN', [f'distill.loss_fbkd_fpn{i}' for i in range(4)]),
    # CrossKD: the teacher's head runs too, but by the algorithm after the
    # teacher's extract_feat ('feat' mode).
    'crosskd_gfl-r101_gfl-r50_8xb2-1x_coco.py':
    ('GFL', ['distill.loss_cls_kd', 'distill.loss_dist_kd',
             'distill.loss_box_kd']),
    'crosskd_retinanet-r101_retinanet-r50_8xb2-2x_coco.py':
    ('RetinaNet', ['distill.loss_cls_kd', 'distill.loss_box_kd']),
}
# Teachers of another detector family than the student (config name ->
# teacher type, its backbone type and depth, None for a backbone without
# one). Every other teacher in EXPECTED is the student's detector type on a
# ResNet/ResNeXt-101.
OTHER_TEACHERS = {
    'pkd_fpn_fcos-x101_retinanet-r50_8xb2-1x_coco.py':
    ('FCOS', 'ResNeXt', 101),
    'pkd_fpn_mask-rcnn-swin-s_retinanet-r50_8xb2-2x_coco.py':
    ('MaskRCNN', 'SwinTransformer', None),
}
# Batch image size where 64x64 does not do. mmcv's deform_conv refuses a
# map smaller than its 3x3 kernel whatever the padding ("input image is
# smaller than kernel", on CPU and GPU alike); the RepPoints teacher's DCN
# in stage c5 sees 2x2 maps at 64x64 and 3x3 at 96x96.
IMAGE_SIZES = {
    'pkd_fpn_reppoints-x101-dcn_reppoints-r50_8xb2-2x_coco.py': (96, 96),
}


# Fewer sampled RoIs than COCO's 512 per image: the step's cost is
# otherwise dominated by the R-CNN head's 12544 x 1024 fully connected layer.
FAST_RCNN_OPTIONS = {
    'model.train_cfg.rpn_proposal.max_per_img': 64,
    'model.train_cfg.rcnn.sampler.num': 32
}


def build_without_downloads(path):
    """The algorithm of ``path`` with no teacher checkpoint and no ImageNet
    initialisation of either backbone (nothing is downloaded)."""
    cfg = Config.fromfile(path)
    assert cfg.model.teacher_ckpt.startswith(
        'https://download.openmmlab.com/mmdetection/')
    cfg.model.teacher_ckpt = None
    for role in ('architecture', 'teacher'):
        # No model-zoo weights either (FBKD's student is pretrained=True).
        cfg.model[role]['pretrained'] = False
        options = {'model.backbone.init_cfg': None}
        # By the model's own config: a RetinaNet student of an R-CNN
        # teacher has no RoI sampler.
        if 'rcnn' in cfg.model[role]['cfg_path']:
            options.update(FAST_RCNN_OPTIONS)
        cfg.model[role]['cfg_options'] = options
    return cfg, MODELS.build(cfg.model)


def test_there_are_detection_model_zoo_configs():
    names = {osp.basename(p) for p in DET_CONFIGS}
    assert set(EXPECTED) <= names, sorted(set(EXPECTED) - names)


@pytest.mark.parametrize('path', DET_CONFIGS,
                         ids=[osp.basename(p) for p in DET_CONFIGS])
def test_det_model_zoo_config_builds_and_steps(path):
    detector_type, loss_keys = EXPECTED.get(osp.basename(path), (None, []))
    cfg, model = build_without_downloads(path)
    student, teacher = model.architecture, model.teacher
    for net in (student, teacher):
        assert 'Pretrained' not in str(net.backbone.init_cfg)
    if detector_type is not None:
        teacher_type, teacher_backbone, teacher_depth = OTHER_TEACHERS.get(
            osp.basename(path), (detector_type, None, 101))
        assert type(student).__name__ == detector_type
        assert type(teacher).__name__ == teacher_type
        if teacher_backbone is not None:
            assert type(teacher.backbone).__name__ == teacher_backbone
        # ResNet-50 student, ResNet(-like)-101 teacher (or a Swin one).
        assert student.backbone.depth == 50
        if teacher_depth is not None:
            assert teacher.backbone.depth == teacher_depth
        # Only FPN outputs are distilled: the teacher's heads never run.
        assert model.teacher_forward_mode == 'feat'
    # Both networks see one preprocessed batch (the student's settings): a
    # teacher trained with another normalisation would get wrong inputs.
    for key in ('mean', 'std'):
        assert torch.equal(
            getattr(student.data_preprocessor, key),
            getattr(teacher.data_preprocessor, key)), key
    assert student.data_preprocessor._channel_conversion == \
        teacher.data_preprocessor._channel_conversion

    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    model.train()
    torch.manual_seed(0)
    # 64x64 keeps the R101 teacher cheap on CPU and still gives every
    # pyramid level (down to stride 128) one position at least (see
    # IMAGE_SIZES for the exception).
    size = IMAGE_SIZES.get(osp.basename(path), (64, 64))
    log_vars = model.train_step(
        det_batch(2, size, num_classes=80, seed=0, with_masks=True,
                  num_boxes=3), wrapper)
    loss_keys = loss_keys or [k for k in log_vars if k.startswith('distill.')]
    assert loss_keys, sorted(log_vars)
    for key in loss_keys:
        assert key in log_vars, (key, sorted(log_vars))
    if detector_type is not None:
        # Exactly the distillation losses of the config, no other.
        assert sorted(k for k in log_vars if k.startswith('distill.')) == \
            sorted(loss_keys), sorted(log_vars)
    assert any(k.startswith('student.loss_cls') for k in log_vars)
    for key, value in log_vars.items():
        assert torch.isfinite(torch.as_tensor(value)).all(), key
    assert sum(float(log_vars[k]) for k in loss_keys) > 0
