"""SingleTeacherDistill's training step on NaN/Inf, with real (thin) mmseg
models, in process: a skipped step changes nothing, a step that leaves NaN
in weights or buffers stops training, the counters travel in state_dict."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper

from mmstructkd.models.utils import NonFiniteStateError
from mmstructkd.registry import MODELS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
TOY = osp.join(REPO_ROOT, 'configs', 'toy')
CWD = 'cwd_logits_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py'
HO = 'skd_pi-pa-ho_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py'
NAN, INF = float('nan'), float('inf')


def build(config=CWD, **model_options):
    cfg = Config.fromfile(osp.join(TOY, config))
    cfg.model.teacher_ckpt = None  # a random teacher is enough here
    cfg.model.update(model_options)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.train()
    return model, cfg


def batch(n=2, size=32, num_classes=5, value=None):
    """A segmentation batch; ``value`` fills the images (e.g. NaN)."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    if value is None:
        inputs = [torch.randint(0, 255, (3, size, size), dtype=torch.uint8)
                  for _ in range(n)]
    else:
        inputs = [torch.full((3, size, size), value) for _ in range(n)]
    samples = []
    for _ in range(n):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(
            data=torch.randint(0, num_classes, (1, size, size)))
        s.set_metainfo(dict(img_shape=(size, size), ori_shape=(size, size),
                            pad_shape=(size, size)))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def at_iteration(i):
    MessageHub.get_current_instance().update_info('iter', i)


def state(model, wrapper):
    return copy.deepcopy(
        dict(model=model.state_dict(), optimizer=wrapper.state_dict()))


def assert_same(a, b, where=''):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for key in a:
            assert_same(a[key], b[key], f'{where}.{key}')
    elif isinstance(a, (list, tuple)):
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f'{where}[{i}]')
    else:
        assert a == b, where


def test_skipped_step_changes_nothing():
    """A NaN batch runs through BatchNorm before its loss can be checked;
    the step is skipped and the running statistics are put back."""
    model, _ = build(max_nonfinite_steps=3)
    wrapper = build_optim_wrapper(
        model, dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)))
    at_iteration(0)
    log_vars = model.train_step(batch(), wrapper)  # creates momentum state
    assert log_vars['nonfinite.skipped'] == 0
    before = state(model, wrapper)
    at_iteration(1)
    log_vars = model.train_step(batch(value=NAN), wrapper)
    assert log_vars['nonfinite.skipped'] == 1
    assert not torch.isfinite(log_vars['loss'])
    # Weights, BatchNorm running statistics and counters, optimizer state.
    after = state(model, wrapper)
    extra = '_extra_state'
    assert after['model'][extra].tolist()[0] == [2, 1, 1]
    after['model'][extra] = before['model'][extra]
    assert_same(before, after, 'state')
    assert all(p.grad is None or not p.grad.any()
               for p in model.parameters())


def test_update_to_nonfinite_weights_stops_training():
    model, _ = build()
    wrapper = build_optim_wrapper(model, dict(optimizer=dict(type='SGD',
                                                             lr=INF)))
    at_iteration(5)
    with pytest.raises(NonFiniteStateError) as info:
        model.train_step(batch(), wrapper)
    message = str(info.value)
    assert 'NonFiniteGuard(student step)' in message
    assert 'after the update at iteration 5' in message
    assert 'architecture.' in message
    assert 'Resume (--resume)' in message


def test_finite_loss_with_nonfinite_buffer_stops_training():
    """BatchNorm updates its running statistics in the forward: a finite
    loss does not prove the buffers finite (here one overflows)."""
    model, _ = build()
    wrapper = build_optim_wrapper(model, dict(optimizer=dict(type='SGD',
                                                             lr=0.01)))
    bn = model.architecture.backbone.stem[1]

    def overflow(module, inputs, output):
        # .data: BatchNorm's backward still needs the version it saved.
        module.running_var.data[0] = INF

    bn.register_forward_hook(overflow)
    at_iteration(0)
    with pytest.raises(NonFiniteStateError) as info:
        model.train_step(batch(), wrapper)
    message = str(info.value)
    assert 'architecture.backbone.stem.1.running_var' in message
    assert '1 parameters/buffers are NaN or Inf' in message


def test_critic_update_to_nonfinite_weights_stops_training():
    model, cfg = build(HO)
    cfg.optim_wrapper.discriminator.optimizer.lr = INF
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    at_iteration(2)
    with pytest.raises(NonFiniteStateError) as info:
        model.train_step(batch(), wrapper)
    message = str(info.value)
    assert 'NonFiniteGuard(discriminator step)' in message
    assert 'iteration 2' in message
    # Names are relative to the critic.
    assert 'stages.' in message or 'fc' in message


def test_guard_counters_travel_in_state_dict():
    model, _ = build(max_nonfinite_steps=5)
    wrapper = build_optim_wrapper(model, dict(optimizer=dict(type='SGD',
                                                             lr=0.01)))
    for i, value in enumerate([None, NAN, INF]):
        at_iteration(i)
        model.train_step(batch(value=value), wrapper)
    assert model.student_guard.state_dict() == dict(
        num_checked=3, num_skipped=2, num_consecutive=2)
    resumed, _ = build(max_nonfinite_steps=5)
    resumed.load_state_dict(model.state_dict())
    assert resumed.student_guard.state_dict() == \
        model.student_guard.state_dict()
    assert resumed.discriminator_guard.state_dict() == dict(
        num_checked=0, num_skipped=0, num_consecutive=0)
    # The resumed guard goes on counting: 3 more bad steps reach 5.
    wrapper = build_optim_wrapper(resumed, dict(optimizer=dict(type='SGD',
                                                               lr=0.01)))
    at_iteration(3)
    resumed.train_step(batch(value=NAN), wrapper)
    at_iteration(4)
    resumed.train_step(batch(value=NAN), wrapper)
    at_iteration(5)
    with pytest.raises(RuntimeError, match='5 steps in a row'):
        resumed.train_step(batch(value=NAN), wrapper)
