"""Through SingleTeacherDistill's real loss and backward (thin mmseg
models, in process): the student gets gradients, from the distillation loss
too; the teacher gets none, is run without autograd, and is in no
optimizer."""
import os.path as osp

import pytest
import torch
from mmengine.optim import build_optim_wrapper

from mmstructkd.registry import MODELS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
TOY = osp.join(REPO_ROOT, 'configs', 'toy')
STUDENT_CFG = osp.join(TOY, 'pspnet_r18-d8-thin16_1xb8-2k_toyscenes.py')
TEACHER_CFG = osp.join(TOY, 'pspnet_r34-d8-thin32_1xb8-2k_toyscenes.py')


def build_model():
    logits = dict(logits=dict(type='ModuleOutputs',
                              source='decode_head.conv_seg'))
    return MODELS.build(dict(
        type='mmstructkd.SingleTeacherDistill',
        architecture=dict(cfg_path=STUDENT_CFG),
        teacher=dict(cfg_path=TEACHER_CFG),
        distiller=dict(
            type='ConfigurableDistiller',
            student_recorders=logits, teacher_recorders=logits,
            distill_losses=dict(loss_kd=dict(type='ChannelWiseDivergence',
                                             tau=1.0)),
            loss_forward_mappings=dict(loss_kd=dict(
                preds_S=dict(from_student=True, recorder='logits'),
                preds_T=dict(from_student=False, recorder='logits'))))))


def fake_batch(n=2, size=32, num_classes=5):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    gen = torch.Generator().manual_seed(0)
    inputs = [torch.randint(0, 255, (3, size, size), dtype=torch.uint8,
                            generator=gen) for _ in range(n)]
    samples = []
    for _ in range(n):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.randint(
            0, num_classes, (1, size, size), generator=gen))
        s.set_metainfo(dict(img_shape=(size, size), ori_shape=(size, size),
                            pad_shape=(size, size)))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


class GradModeProbe:
    """Forward hooks on the teacher's modules: was autograd on when each
    ran, and did its outputs carry a graph?"""

    def __init__(self, module):
        self.calls = []
        self.handles = [m.register_forward_hook(self.hook)
                        for m in module.modules()]

    def hook(self, module, args, output):
        outs = output if isinstance(output, (tuple, list)) else [output]
        self.calls.append((torch.is_grad_enabled(), any(
            isinstance(o, torch.Tensor) and o.requires_grad for o in outs)))

    def remove(self):
        for handle in self.handles:
            handle.remove()


def distill_loss_backward(model):
    """The algorithm's loss on a batch; backward of its distillation part
    only (so any student gradient comes from the teacher comparison)."""
    data = model.data_preprocessor(fake_batch(), True)
    losses = model(**data, mode='loss')
    distill = [v for k, v in losses.items() if k.startswith('distill.')]
    assert distill and any(k.startswith('student.') for k in losses), \
        sorted(losses)
    sum(distill).backward()
    return losses


@pytest.mark.parametrize('unfreeze_teacher', [False, True])
def test_teacher_gets_no_gradient_student_does(unfreeze_teacher):
    torch.manual_seed(0)
    model = build_model()
    model.train()
    if unfreeze_teacher:
        # Even with the teacher's parameters made trainable again (e.g. by
        # a user hook), the teacher runs without autograd: no gradient, no
        # graph kept through it.
        for param in model.teacher.parameters():
            param.requires_grad_(True)
    else:
        assert not any(p.requires_grad for p in model.teacher.parameters())
    probe = GradModeProbe(model.teacher)
    try:
        distill_loss_backward(model)
    finally:
        probe.remove()
    assert probe.calls, 'the teacher did not run'
    assert not any(enabled for enabled, _ in probe.calls), \
        'the teacher ran with autograd enabled'
    assert not any(graph for _, graph in probe.calls)

    teacher_grads = {n: p.grad for n, p in model.teacher.named_parameters()}
    assert teacher_grads and all(g is None for g in teacher_grads.values()), \
        [n for n, g in teacher_grads.items() if g is not None]
    # The distillation loss alone reaches the student's head and backbone.
    student = dict(model.architecture.named_parameters())
    for name in ('decode_head.conv_seg.weight', 'backbone.stem.0.weight'):
        grad = student[name].grad
        assert grad is not None, name
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_teacher_params_in_no_optimizer_student_params_in_it():
    model = build_model()
    wrapper = build_optim_wrapper(
        model, dict(optimizer=dict(type='SGD', lr=0.01)))
    in_optim = {id(p) for g in wrapper.optimizer.param_groups
                for p in g['params']}
    teacher = [p for p in model.teacher.parameters()]
    assert teacher and not {id(p) for p in teacher} & in_optim
    assert {id(p) for p in model.architecture.parameters()} <= in_optim
    # A step of the whole algorithm leaves the teacher as it was and moves
    # the student.
    before_t = [p.detach().clone() for p in teacher]
    before_s = {n: p.detach().clone()
                for n, p in model.architecture.named_parameters()}
    model.train_step(fake_batch(), wrapper)
    assert all(torch.equal(a, p) for a, p in zip(before_t, teacher))
    moved = [n for n, p in model.architecture.named_parameters()
             if not torch.equal(before_s[n], p)]
    assert 'decode_head.conv_seg.weight' in moved, moved
