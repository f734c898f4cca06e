"""No config hands the student and the teacher the same recorder dict.

mmengine substitutes ``{{_base_.x}}`` with one object: a config that named
one base dict for both sides would share it, and an edit of one side
(``--cfg-options model.distiller.teacher_recorders...``, or the config
changed in Python) would silently change the other."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# The configs whose student recorders come from a base file.
CONFIGS = sorted(
    osp.relpath(p, REPO_ROOT)
    for p in glob.glob(osp.join(REPO_ROOT, 'configs', '*', '*.py'))
    if 'student_recorders={{_base_.' in open(p).read())


def shared_dicts(a, b):
    """The dicts reachable from ``a`` that are also reachable from ``b``."""
    def reachable(obj, seen):
        if isinstance(obj, dict):
            seen[id(obj)] = obj
            for value in obj.values():
                reachable(value, seen)
        elif isinstance(obj, (list, tuple)):
            for value in obj:
                reachable(value, seen)
        return seen
    left, right = reachable(a, {}), reachable(b, {})
    return [left[i] for i in left.keys() & right.keys()]


def test_the_base_recorder_configs_are_found():
    assert len(CONFIGS) >= 8, CONFIGS


@pytest.mark.parametrize('config', CONFIGS)
def test_student_and_teacher_recorders_are_distinct(config):
    distiller = Config.fromfile(osp.join(REPO_ROOT, config)).model.distiller
    assert distiller.student_recorders == distiller.teacher_recorders
    assert not shared_dicts(distiller.student_recorders,
                            distiller.teacher_recorders)
    # So an edit of the teacher's side leaves the student's alone.
    distiller.teacher_recorders.fpn.source = 'neck.fpn_convs.0'
    assert distiller.student_recorders.fpn.source == 'neck'
