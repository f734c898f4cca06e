# Structural (SSIM) distillation on the FPN (de Rijk et al., 2022), toy
# Faster R-CNN teacher -> toy student: 1 - SSIM of min-max rescaled levels,
# summed over the 5 levels (levels smaller than the 11x11 window use a
# smaller one). The student's FPN has 16 channels and the teacher's 32, so a
# 1x1 convolution (the paper's adaptation layer; trained with the student,
# dropped at export) maps every student level to 32 channels. Only the
# teacher's backbone and neck run.
_base_ = [
    './faster-rcnn_r18-thin16_fpn_1xb8-2k_toyscenes-64x64.py',
    './_base_/toy_det_distill.py'
]
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
        distill_losses=dict(
            loss_ssim_fpn=dict(type='StructuralSimilarityLoss',
                               loss_weight=1.0)),
        loss_forward_mappings=dict(
            loss_ssim_fpn=dict(
                preds_S=dict(from_student=True, recorder='fpn',
                             connector='fpn_adapter'),
                preds_T=dict(from_student=False, recorder='fpn')))))

val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
