import pytest
import torch
from torch import nn

from mmstructkd.models.distillers import ConfigurableDistiller
from mmstructkd.registry import MODELS


@MODELS.register_module(force=True)
class _MSEForTest(nn.Module):
    """A tiny loss used to check the distiller's wiring, not a formula."""

    def __init__(self, loss_weight=1.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, preds_S, preds_T):
        return self.loss_weight * ((preds_S - preds_T)**2).mean()


class Net(nn.Module):

    def __init__(self, width):
        super().__init__()
        self.backbone = nn.Conv2d(3, width, 1)
        self.head = nn.Conv2d(width, 2, 1)

    def forward(self, x):
        return self.head(self.backbone(x))


def make_distiller(**overrides):
    cfg = dict(
        student_recorders=dict(
            feat=dict(type='ModuleOutputs', source='backbone'),
            logits=dict(type='ModuleOutputs', source='head')),
        teacher_recorders=dict(
            feat=dict(type='ModuleOutputs', source='backbone'),
            logits=dict(type='ModuleOutputs', source='head')),
        connectors=dict(
            s_feat=dict(type='ConvModuleConnector', in_channel=4,
                        out_channel=6, norm_cfg=None)),
        distill_losses=dict(
            loss_feat=dict(type='_MSEForTest', loss_weight=2.0),
            loss_logits=dict(type='_MSEForTest')),
        loss_forward_mappings=dict(
            loss_feat=dict(
                preds_S=dict(from_student=True, recorder='feat',
                             connector='s_feat'),
                preds_T=dict(from_student=False, recorder='feat')),
            loss_logits=dict(
                preds_S=dict(from_student=True, recorder='logits'),
                preds_T=dict(from_student=False, recorder='logits'))))
    cfg.update(overrides)
    return ConfigurableDistiller(**cfg)


def test_losses_follow_mappings_and_connectors():
    student, teacher = Net(4), Net(6)
    distiller = make_distiller()
    distiller.prepare_from_student(student)
    distiller.prepare_from_teacher(teacher)
    x = torch.randn(2, 3, 5, 3)
    with distiller.teacher_recorders, torch.no_grad():
        teacher(x)
    with distiller.student_recorders:
        student(x)
    losses = distiller.compute_distill_losses()
    s_feat, t_feat = student.backbone(x), teacher.backbone(x)
    expected_feat = 2.0 * ((distiller.connectors['s_feat'](s_feat) -
                            t_feat)**2).mean()
    expected_logits = ((student(x) - teacher(x))**2).mean()
    assert torch.allclose(losses['loss_feat'], expected_feat)
    assert torch.allclose(losses['loss_logits'], expected_logits)
    # Gradients reach the student and the connector. (That the teacher gets
    # none is the algorithm's doing, not the distiller's: checked through
    # SingleTeacherDistill's loss and backward in
    # test_algorithms/test_teacher_gets_no_gradient.py.)
    sum(losses.values()).backward()
    assert student.backbone.weight.grad is not None
    assert student.backbone.weight.grad.abs().sum() > 0
    assert distiller.connectors['s_feat'].conv.conv.weight.grad is not None
    assert distiller.connectors['s_feat'].conv.conv.weight.grad.abs().sum() > 0
    # The multiplier (set by the loss-weight scheduler) scales and disables.
    distiller.loss_weight_multipliers['loss_logits'] = 0.5
    assert torch.allclose(distiller.compute_distill_losses()['loss_logits'],
                          0.5 * expected_logits)
    distiller.loss_weight_multipliers['loss_logits'] = 0.0
    assert 'loss_logits' not in distiller.compute_distill_losses()


@pytest.mark.parametrize('overrides, message', [
    (dict(loss_forward_mappings=dict(
        loss_feat=dict(preds_S=dict(from_student=True, recorder='feat'),
                       preds_T=dict(from_student=False, recorder='feat')),
        loss_logits=dict(
            prediction=dict(from_student=True, recorder='logits'),
            preds_T=dict(from_student=False, recorder='logits')))),
     "_MSEForTest.forward takes no argument 'prediction'"),
    (dict(loss_forward_mappings=dict(
        loss_feat=dict(preds_S=dict(from_student=True, recorder='feet'),
                       preds_T=dict(from_student=False, recorder='feat')),
        loss_logits=dict(
            preds_S=dict(from_student=True, recorder='logits'),
            preds_T=dict(from_student=False, recorder='logits')))),
     "no recorder 'feet' in student_recorders"),
    (dict(loss_forward_mappings=dict(
        loss_feat=dict(preds_S=dict(from_student=True, recorder='feat',
                                    connector='nope'),
                       preds_T=dict(from_student=False, recorder='feat')),
        loss_logits=dict(
            preds_S=dict(from_student=True, recorder='logits'),
            preds_T=dict(from_student=False, recorder='logits')))),
     "no connector 'nope'"),
    (dict(loss_forward_mappings=dict(
        loss_feat=dict(preds_S=dict(from_student=True, recorder='feat')),
        loss_logits=dict(
            preds_S=dict(from_student=True, recorder='logits'),
            preds_T=dict(from_student=False, recorder='logits')))),
     r"needs \['preds_T'\]"),
    (dict(loss_forward_mappings=dict(
        loss_logits=dict(
            preds_S=dict(from_student=True, recorder='logits'),
            preds_T=dict(from_student=False, recorder='logits')))),
     "distill_losses['loss_feat'] has no entry"),
])
def test_bad_mappings_fail_at_build(overrides, message):
    with pytest.raises(KeyError) as info:
        make_distiller(**overrides)
    assert message.replace('\\', '') in str(info.value) or \
        __import__('re').search(message, str(info.value))


def test_data_idx_out_of_range_names_recorder():
    student, teacher = Net(4), Net(6)
    distiller = make_distiller(
        student_recorders=dict(
            feat=dict(type='ModuleInputs', source='head'),
            logits=dict(type='ModuleOutputs', source='head')),
        connectors=dict(),
        loss_forward_mappings=dict(
            loss_feat=dict(
                preds_S=dict(from_student=True, recorder='feat', data_idx=2),
                preds_T=dict(from_student=False, recorder='feat')),
            loss_logits=dict(
                preds_S=dict(from_student=True, recorder='logits'),
                preds_T=dict(from_student=False, recorder='logits'))))
    distiller.prepare_from_student(student)
    distiller.prepare_from_teacher(teacher)
    x = torch.randn(1, 3, 2, 2)
    with distiller.teacher_recorders:
        teacher(x)
    with distiller.student_recorders:
        student(x)
    with pytest.raises(IndexError) as info:
        distiller.compute_distill_losses()
    assert "student_recorders['feat']" in str(info.value)
    assert 'data_idx=2' in str(info.value)


class ClassHead(nn.Module):
    """A head with num_classes whose last module hides its channel count
    (nn.Identity), so the class counts can only be compared at a step."""

    def __init__(self, num_classes):
        super().__init__()
        self.num_classes = num_classes
        self.conv_seg = nn.Conv2d(4, num_classes, 1)
        self.out = nn.Identity()

    def forward(self, x):
        return self.out(self.conv_seg(x))


class SegNet(nn.Module):

    def __init__(self, num_classes):
        super().__init__()
        self.backbone = nn.Conv2d(3, 4, 1)
        self.decode_head = ClassHead(num_classes)

    def forward(self, x):
        return self.decode_head(self.backbone(x))


def class_distiller(source):
    logits = dict(logits=dict(type='ModuleOutputs', source=source))
    return ConfigurableDistiller(
        student_recorders=logits, teacher_recorders=logits,
        distill_losses=dict(loss_kd=dict(type='ChannelWiseDivergence')),
        loss_forward_mappings=dict(loss_kd=dict(
            preds_S=dict(from_student=True, recorder='logits'),
            preds_T=dict(from_student=False, recorder='logits'))))


def test_other_num_classes_named_at_build_or_first_step():
    student, teacher = SegNet(5), SegNet(7)
    # The recorded conv says its channels: caught at build.
    distiller = class_distiller('decode_head.conv_seg')
    distiller.prepare_from_student(student)
    with pytest.raises(ValueError) as info:
        distiller.prepare_from_teacher(teacher)
    assert 'num_classes differs between the teacher and student' in str(
        info.value)
    # It does not: caught by the loss at the first step, with the same
    # explanation instead of a connector that would only hide it.
    distiller = class_distiller('decode_head.out')
    distiller.prepare_from_student(student)
    distiller.prepare_from_teacher(teacher)
    x = torch.randn(2, 3, 4, 4)
    with distiller.teacher_recorders, torch.no_grad():
        teacher(x)
    with distiller.student_recorders:
        student(x)
    with pytest.raises(ValueError) as info:
        distiller.compute_distill_losses()
    message = str(info.value)
    assert 'num_classes differs between the teacher and student' in message
    assert 'decode_head.num_classes=7' in message
    assert 'decode_head.num_classes=5' in message
    assert 'ConvModuleConnector' not in message
    # Same classes, other features: no class-count message.
    distiller = class_distiller('decode_head.conv_seg')
    distiller.prepare_from_student(SegNet(5))
    distiller.prepare_from_teacher(SegNet(5))


@pytest.mark.parametrize('weights, message', [
    (dict(loss_weight='5'), 'loss_weight must be a number'),
    (dict(loss_weight=None), 'loss_weight must be a number'),
    (dict(loss_weight=True), 'loss_weight must be a number'),
    (dict(level_weights=[1, '2']), 'level_weights must be numbers'),
])
def test_non_numeric_loss_weights_fail_at_build(weights, message):
    with pytest.raises(TypeError) as info:
        make_distiller(distill_losses=dict(
            loss_feat=dict(type='_MSEForTest'),
            loss_logits=dict(type='ChannelWiseDivergence', **weights)))
    assert "distill_losses['loss_logits'] (ChannelWiseDivergence)" in str(
        info.value)
    assert message in str(info.value)
    # Numbers of any kind are fine.
    make_distiller(distill_losses=dict(
        loss_feat=dict(type='_MSEForTest', loss_weight=2),
        loss_logits=dict(type='ChannelWiseDivergence', loss_weight=0.5,
                         level_weights=(1, 0.5))))
