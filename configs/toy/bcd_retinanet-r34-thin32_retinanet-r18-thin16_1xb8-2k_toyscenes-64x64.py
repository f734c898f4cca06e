# BCD for detection: boundary maps of the four backbone stages matched between
# teacher and student (no logits: detectors have no per-pixel class map, so
# the boundary-weighted logit term is off), and context relations of the
# finest FPN level (P2, 16x16 at 64x64 inputs). Only the teacher's backbone
# and neck run. Weights untuned.
_base_ = [
    './retinanet_r18-thin16_fpn_1xb8-2k_toyscenes-64x64.py',
    './_base_/toy_det_distill.py'
]
model = dict(
    _delete_=True,
    _scope_='mmstructkd',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path={{_base_.retinanet_student_cfg_path}}),
    teacher=dict(cfg_path={{_base_.retinanet_teacher_cfg_path}}),
    teacher_ckpt={{_base_.retinanet_teacher_ckpt}},
    distiller={{_base_.bcd_fpn_distiller}})
val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
