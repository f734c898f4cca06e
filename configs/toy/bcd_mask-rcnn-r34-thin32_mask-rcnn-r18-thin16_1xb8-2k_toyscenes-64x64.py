# BCD for instance segmentation: the same boundary and context terms on the
# toy Mask R-CNN pair (student FPN 16 channels, teacher 32: boundary maps and
# relations do not need a connector). Evaluated with CocoMetric on boxes and
# masks.
_base_ = [
    './mask-rcnn_r18-thin16_fpn_1xb8-2k_toyscenes-64x64.py',
    './_base_/toy_det_distill.py'
]
model = dict(
    _delete_=True,
    _scope_='mmstructkd',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path={{_base_.mask_rcnn_student_cfg_path}}),
    teacher=dict(cfg_path={{_base_.mask_rcnn_teacher_cfg_path}}),
    teacher_ckpt={{_base_.mask_rcnn_teacher_ckpt}},
    distiller={{_base_.bcd_fpn_distiller}})
val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
