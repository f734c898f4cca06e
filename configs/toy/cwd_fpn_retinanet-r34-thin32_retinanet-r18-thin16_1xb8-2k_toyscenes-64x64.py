# Channel-wise distillation (Shu et al., 2021) on every FPN level, toy
# RetinaNet teacher -> toy student: mmrazor's detection setting (one loss per
# level, picked with data_idx; tau 1, weight 10 each). Only the teacher's
# backbone and neck run (teacher_forward_mode 'auto' -> 'feat').
_base_ = [
    './retinanet_r18-thin16_fpn_1xb8-2k_toyscenes-64x64.py',
    './_base_/toy_det_distill.py', '../_base_/distill/cwd_fpn.py'
]
model = dict(
    _delete_=True,
    _scope_='mmstructkd',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path={{_base_.retinanet_student_cfg_path}}),
    teacher=dict(cfg_path={{_base_.retinanet_teacher_cfg_path}}),
    teacher_ckpt={{_base_.retinanet_teacher_ckpt}},
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders={{_base_.cwd_fpn_student_recorders}},
        teacher_recorders={{_base_.cwd_fpn_teacher_recorders}},
        distill_losses={{_base_.cwd_fpn_losses}},
        loss_forward_mappings={{_base_.cwd_fpn_loss_forward_mappings}}))

val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
