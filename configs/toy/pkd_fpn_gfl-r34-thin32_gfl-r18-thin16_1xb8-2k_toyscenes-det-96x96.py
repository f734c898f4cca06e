# PKD (Cao et al., 2022) on the FPN, toy GFL teacher -> toy GFL student on the
# detection proxy: each level's channels standardised over (N, H, W) in both
# networks, then half the MSE between them (1 - Pearson correlation per
# channel). mmrazor's published setting: the first four levels, weight 10
# each (configs/_base_/distill/pkd_fpn.py). Both FPNs have 32 channels: no
# connector. Only the teacher's backbone and neck run.
_base_ = [
    './gfl_r18-thin16_fpn_1xb8-2k_toyscenes-det-96x96.py',
    './_base_/toy_det_distill.py', '../_base_/distill/pkd_fpn.py'
]
model = dict(
    _delete_=True,
    _scope_='mmstructkd',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path={{_base_.gfl_student_cfg_path}}),
    teacher=dict(cfg_path={{_base_.gfl_teacher_cfg_path}}),
    teacher_ckpt={{_base_.gfl_teacher_ckpt}},
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders={{_base_.pkd_fpn_student_recorders}},
        teacher_recorders={{_base_.pkd_fpn_teacher_recorders}},
        distill_losses={{_base_.pkd_fpn_losses_weight10}},
        loss_forward_mappings={{_base_.pkd_fpn_loss_forward_mappings}}))

val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
