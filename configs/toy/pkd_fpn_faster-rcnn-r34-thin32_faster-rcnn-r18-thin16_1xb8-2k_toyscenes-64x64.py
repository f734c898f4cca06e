# PKD (Cao et al., 2022) on every FPN level, toy Faster R-CNN teacher -> toy
# student: half the MSE between channel-standardised levels, one loss per
# level (weight 6 each, mmrazor's Faster R-CNN setting). The student's FPN
# has 16 channels and the teacher's 32, so one 1x1 convolution (shared by the
# levels; trained with the student, dropped at export) maps every student
# level to 32 channels before standardising. Only the teacher's backbone and
# neck run.
_base_ = [
    './faster-rcnn_r18-thin16_fpn_1xb8-2k_toyscenes-64x64.py',
    './_base_/toy_det_distill.py'
]
num_levels = 5
model = dict(
    _delete_=True,
    _scope_='mmstructkd',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path={{_base_.faster_rcnn_student_cfg_path}}),
    teacher=dict(cfg_path={{_base_.faster_rcnn_teacher_cfg_path}}),
    teacher_ckpt={{_base_.faster_rcnn_teacher_ckpt}},
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        teacher_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        connectors=dict(
            fpn_adapter=dict(
                type='ConvModuleConnector',
                in_channel=16,
                out_channel=32,
                norm_cfg=None)),
        distill_losses={
            f'loss_pkd_fpn{i}': dict(type='PKDLoss', loss_weight=6)
            for i in range(num_levels)
        },
        loss_forward_mappings={
            f'loss_pkd_fpn{i}': dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=i,
                             connector='fpn_adapter'),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
            for i in range(num_levels)
        }))

val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
