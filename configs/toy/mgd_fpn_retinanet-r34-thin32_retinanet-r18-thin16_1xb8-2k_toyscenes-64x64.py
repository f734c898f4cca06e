# MGD (Yang et al., 2022) on every FPN level, toy RetinaNet teacher -> toy
# student: per level, an MGDConnector masks 65% of the student's positions at
# random and a conv3x3-ReLU-conv3x3 generator reconstructs the teacher's
# level from the rest; the loss is alpha * sum (G - T)^2 / N with alpha 2e-5
# (mmrazor's RetinaNet setting). Both FPNs have 32 channels, so no align
# conv. Each level has its own connector (trained with the student, dropped
# at export) and mask seed; the mask generators' states are saved in the
# checkpoints, so --resume draws the same masks. Only the teacher's backbone
# and neck run.
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
        connectors={
            f'mgd_fpn{i}': dict(
                type='MGDConnector',
                student_channels=32,
                teacher_channels=32,
                lambda_mgd=0.65,
                seed=i)
            for i in range(num_levels)
        },
        distill_losses={
            f'loss_mgd_fpn{i}': dict(type='MGDLoss', alpha_mgd=2e-5)
            for i in range(num_levels)
        },
        loss_forward_mappings={
            f'loss_mgd_fpn{i}': dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=i,
                             connector=f'mgd_fpn{i}'),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
            for i in range(num_levels)
        }))

val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
