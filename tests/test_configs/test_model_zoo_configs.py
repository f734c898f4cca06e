"""Every model-zoo distillation config builds its models (random weights:
the teacher checkpoints are model-zoo URLs we cannot download here) and one
training step on random data gives finite losses."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

import mmstructkd  # noqa: F401
from mmstructkd.registry import MODELS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SEG_CONFIGS = sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs', 'cwd', '*cityscapes*.py')) +
    glob.glob(osp.join(REPO_ROOT, 'configs', 'skd', '*cityscapes*.py')) +
    glob.glob(osp.join(REPO_ROOT, 'configs', 'bcd', '*cityscapes*.py')) +
    glob.glob(osp.join(REPO_ROOT, 'configs', 'dist', '*cityscapes*.py')))

_SKD = 'skd_{}_pspnet-r101-d8_pspnet-r18-d8_4xb2-40k_cityscapes-512x512.py'
# The reproduction configs (tools/reproduce.sh) -> exactly the distillation
# losses they must log; other configs get the generic checks only.
EXPECTED_DISTILL_KEYS = {
    _SKD.format('pi'): {'distill.loss_pi'},
    _SKD.format('pi-pa'): {'distill.loss_pi', 'distill.loss_pa'},
    _SKD.format('pi-pa-fullres'): {'distill.loss_pi', 'distill.loss_pa'},
    _SKD.format('pi-pa-ho'):
    {'distill.loss_pi', 'distill.loss_pa', 'distill.loss_ho'},
    'cwd_logits_pspnet-r101-d8_pspnet-r18-d8_4xb2-80k_cityscapes-512x1024.py':
    {'distill.loss_cwd'},
    'dist_logits_deeplabv3-r101-d8_deeplabv3-r18-d8_8xb2-40k_cityscapes-'
    '512x1024.py': {'distill.loss_dist', 'distill.loss_dist_aux'},
    'dist_logits_deeplabv3-r101-d8_pspnet-r18-d8_8xb2-40k_cityscapes-'
    '512x1024.py': {'distill.loss_dist', 'distill.loss_dist_aux'},
}


def seg_batch(n, h, w, num_classes=19):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    samples = []
    for _ in range(n):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.randint(0, num_classes,
                                                    (1, h, w)))
        s.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w),
                            pad_shape=(h, w)))
        samples.append(s)
    inputs = [torch.randint(0, 255, (3, h, w), dtype=torch.uint8)
              for _ in range(n)]
    return dict(inputs=inputs, data_samples=samples)


def build_without_teacher_weights(path):
    cfg = Config.fromfile(path)
    assert cfg.model.teacher_ckpt.startswith('https://download.openmmlab')
    cfg.model.teacher_ckpt = None
    # No ImageNet download for the student's backbone either.
    cfg.model.architecture.setdefault('cfg_options', {})
    cfg.model.architecture.cfg_options['model.pretrained'] = None
    cfg.model.teacher['cfg_options'] = {'model.pretrained': None}
    return cfg, MODELS.build(cfg.model)


def test_there_are_model_zoo_configs():
    names = [osp.basename(p) for p in SEG_CONFIGS]
    assert ('cwd_logits_pspnet-r101-d8_pspnet-r18-d8_4xb2-80k_'
            'cityscapes-512x1024.py') in names
    assert any(n.startswith('cwd_logits_deeplabv3') for n in names)
    assert any(n.startswith('skd_pi_') for n in names)
    assert set(EXPECTED_DISTILL_KEYS) <= set(names)


@pytest.mark.parametrize('path', SEG_CONFIGS,
                         ids=[osp.basename(p) for p in SEG_CONFIGS])
def test_model_zoo_config_builds_and_steps(path):
    cfg, model = build_without_teacher_weights(path)
    assert type(model.architecture).__name__ == 'EncoderDecoder'
    # ResNet-18 student, ResNet-101 teacher.
    assert model.architecture.backbone.depth == 18
    assert model.teacher.backbone.depth == 101
    # A tiny input keeps the R101 teacher's step cheap on CPU.
    model.data_preprocessor.size = (64, 64)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    model.train()
    torch.manual_seed(0)
    log_vars = model.train_step(seg_batch(2, 64, 64), wrapper)
    distill_keys = [k for k in log_vars if k.startswith('distill.')]
    assert distill_keys
    expected = EXPECTED_DISTILL_KEYS.get(osp.basename(path))
    if expected is not None:
        assert set(distill_keys) == expected, sorted(log_vars)
    if 'distill.loss_ho' in distill_keys:
        # The critic's own step ran too (WGAN-GP).
        assert {'disc.loss', 'disc.loss_gp'} <= set(log_vars)
    for key, value in log_vars.items():
        assert torch.isfinite(torch.as_tensor(value)).all(), key
