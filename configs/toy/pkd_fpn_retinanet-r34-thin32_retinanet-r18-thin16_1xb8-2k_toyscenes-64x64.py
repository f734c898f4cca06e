# PKD (Cao et al., 2022) on every FPN level, toy RetinaNet teacher -> toy
# student: each level's channels standardised over (N, H, W) in both networks,
# then half the MSE between them (1 - Pearson correlation per channel). One
# loss per level picked with data_idx, weight 10 each (mmrazor's RetinaNet
# setting). Both FPNs have 32 channels: no connector. Only the teacher's
# backbone and neck run.
_base_ = [
    './retinanet_r18-thin16_fpn_1xb8-2k_toyscenes-64x64.py',
    './_base_/toy_det_distill.py'
]
num_levels = 5
model = dict(
    _delete_=True,
    _scope_='mmstructkd',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path={{_base_.retinanet_student_cfg_path}}),
    teacher=dict(cfg_path={{_base_.retinanet_teacher_cfg_path}}),
    teacher_ckpt={{_base_.retinanet_teacher_ckpt}},
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        teacher_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        distill_losses={
            f'loss_pkd_fpn{i}': dict(type='PKDLoss', loss_weight=10)
            for i in range(num_levels)
        },
        loss_forward_mappings={
            f'loss_pkd_fpn{i}': dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
            for i in range(num_levels)
        }))

val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
