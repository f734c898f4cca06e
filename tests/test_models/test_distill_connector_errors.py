"""A connector fed a tensor of the wrong channel count, and a PKD/MGD loss
fed FPNs with different numbers of levels, fail with errors that name the
mapping entry, the connector or loss, the tensors and their shapes (issue
14, "Bad input") rather than a raw torch error."""
import re

import pytest
import torch
from torch import nn

import mmstructkd  # noqa: F401
from mmstructkd.models.distillers import ConfigurableDistiller


class Pyramid(nn.Module):
    """``levels`` maps of ``width`` channels, each half the previous size."""

    def __init__(self, width, levels):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 1)
        self.levels = levels

    def forward(self, x):
        feat = self.stem(x)
        return tuple(
            nn.functional.avg_pool2d(feat, 2**i) for i in range(self.levels))


class Detector(nn.Module):

    def __init__(self, width, levels=3):
        super().__init__()
        self.neck = Pyramid(width, levels)

    def forward(self, x):
        return self.neck(x)


def distill_error(student, teacher, connectors, losses, mappings):
    """The error of one distillation step of ``student``/``teacher``."""
    distiller = ConfigurableDistiller(
        student_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        teacher_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        connectors=connectors,
        distill_losses=losses,
        loss_forward_mappings=mappings)
    distiller.prepare_from_student(student)
    distiller.prepare_from_teacher(teacher)
    x = torch.randn(2, 3, 8, 8)
    with distiller.teacher_recorders, torch.no_grad():
        teacher(x)
    with distiller.student_recorders:
        student(x)
    with pytest.raises(ValueError) as info:
        distiller.compute_distill_losses()
    return str(info.value)


def level0(connector=None):
    return dict(
        preds_S=dict(from_student=True, recorder='fpn', data_idx=0,
                     connector=connector),
        preds_T=dict(from_student=False, recorder='fpn', data_idx=0))


@pytest.mark.parametrize('connector, loss, arg', [
    (dict(type='ConvModuleConnector', in_channel=8, out_channel=16,
          norm_cfg=None), dict(type='PKDLoss'), 'in_channel'),
    (dict(type='MGDConnector', student_channels=8, teacher_channels=16),
     dict(type='MGDLoss'), 'student_channels'),
])
def test_connector_with_the_wrong_input_channels(connector, loss, arg):
    message = distill_error(
        Detector(16), Detector(16), dict(s_fpn0=connector),
        dict(loss_fpn0=loss), dict(loss_fpn0=level0('s_fpn0')))
    assert "loss_forward_mappings['loss_fpn0']['preds_S']" in message
    assert f"connectors['s_fpn0'] ({connector['type']})" in message
    assert "the student's recorder 'fpn' (data_idx 0)" in message
    assert '(2, 16, 8, 8)' in message  # the tensor it got
    assert '(N, 8, H, W)' in message  # what it expects
    assert arg in message  # the setting to fix
    assert 'Given groups' not in message  # not torch's conv error


def test_fbkd_student_connector_with_the_wrong_input_channels():
    message = distill_error(
        Detector(16), Detector(16),
        dict(s=dict(type='FBKDStudentConnector', in_channels=8,
                    teacher_channels=16),
             t=dict(type='FBKDTeacherConnector', in_channels=16)),
        dict(loss_fbkd=dict(type='FBKDLoss')),
        dict(loss_fbkd=dict(
            s_input=dict(from_student=True, recorder='fpn', data_idx=0,
                         connector='s'),
            t_input=dict(from_student=False, recorder='fpn', data_idx=0,
                         connector='t'))))
    assert "loss_forward_mappings['loss_fbkd']['s_input']" in message
    assert "connectors['s'] (FBKDStudentConnector)" in message
    assert '(2, 16, 8, 8)' in message and 'in_channels' in message


@pytest.mark.parametrize('loss', ['PKDLoss', 'MGDLoss'])
def test_fpns_with_different_numbers_of_levels(loss):
    # Whole FPN tuples into one loss: student 2 levels, teacher 3.
    message = distill_error(
        Detector(16, levels=2), Detector(16, levels=3), None,
        dict(loss_fpn=dict(type=loss)),
        dict(loss_fpn=dict(
            preds_S=dict(from_student=True, recorder='fpn'),
            preds_T=dict(from_student=False, recorder='fpn'))))
    assert f"distill_losses['loss_fpn']: {loss}" in message
    assert 'student has 2 feature levels and teacher has 3' in message
    assert 'data_idx' in message  # the way out
    assert re.search(
        r"preds_S: the student's recorder 'fpn' of shape 2 levels "
        r'\[\(2, 16, 8, 8\), \(2, 16, 4, 4\)\]', message), message
    assert re.search(
        r"preds_T: the teacher's recorder 'fpn' of shape 3 levels "
        r'\[\(2, 16, 8, 8\), \(2, 16, 4, 4\), \(2, 16, 2, 2\)\]',
        message), message


def test_shapes_after_a_connector_are_named_as_such():
    # The connector works but maps to 32 channels where the teacher has 16:
    # the loss's error gives the connector's output shape as such.
    message = distill_error(
        Detector(8), Detector(16),
        dict(c=dict(type='ConvModuleConnector', in_channel=8,
                    out_channel=32, norm_cfg=None)),
        dict(loss_fpn0=dict(type='PKDLoss')),
        dict(loss_fpn0=level0('c')))
    assert "distill_losses['loss_fpn0']" in message
    assert "preds_S: the student's recorder 'fpn' (data_idx 0) after " \
        "connectors['c'] of shape (2, 32, 8, 8)" in message
    assert "preds_T: the teacher's recorder 'fpn' (data_idx 0) of shape " \
        '(2, 16, 8, 8)' in message
