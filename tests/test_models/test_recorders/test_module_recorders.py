import pytest
import torch
from torch import nn

from mmstructkd.models.recorders import (ModuleInputs, ModuleOutputs,
                                         RecorderManager)


class TwoLayer(nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU())
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        return self.head(self.backbone(x))


def test_records_only_inside_context():
    model = TwoLayer()
    manager = RecorderManager(
        dict(out=dict(type='ModuleOutputs', source='head'),
             inp=dict(type='ModuleInputs', source='head')), 'student')
    manager.initialize(model)
    x = torch.randn(2, 3, 5, 7)
    model(x)  # outside: nothing recorded
    assert manager['out'].data_buffer == []
    with manager:
        y = model(x)
        y2 = model(x * 2)
    assert torch.equal(manager.get_record_data('out'), y)
    assert torch.equal(manager.get_record_data('out', record_idx=1), y2)
    assert torch.equal(
        manager.get_record_data('inp', data_idx=0), model.backbone(x))
    model(x)  # after the context: nothing more appended
    assert len(manager['out'].data_buffer) == 2
    with manager:  # a new recording starts empty
        pass
    assert manager['out'].data_buffer == []


def test_unknown_source_lists_closest_names():
    manager = RecorderManager(
        dict(feat=dict(type='ModuleOutputs', source='backbone.1x')),
        'teacher')
    with pytest.raises(KeyError) as info:
        manager.initialize(TwoLayer())
    message = str(info.value)
    assert "teacher_recorders['feat']" in message
    assert 'backbone.1' in message and 'backbone.0' in message


def test_index_errors_are_explicit():
    model = TwoLayer()
    rec = ModuleOutputs('head')
    rec.initialize(model)
    with pytest.raises(RuntimeError, match='recorded nothing'):
        rec.get_record_data()
    rec.recording = True
    model(torch.randn(1, 3, 2, 2))
    with pytest.raises(IndexError, match='record_idx=3'):
        rec.get_record_data(record_idx=3)
    with pytest.raises(IndexError, match='single Tensor'):
        rec.get_record_data(data_idx=0)
    inputs = ModuleInputs('head')
    inputs.initialize(model)
    inputs.recording = True
    model(torch.randn(1, 3, 2, 2))
    with pytest.raises(IndexError, match=r'data_idx=4 is out of range.*1 '):
        inputs.get_record_data(data_idx=4)
