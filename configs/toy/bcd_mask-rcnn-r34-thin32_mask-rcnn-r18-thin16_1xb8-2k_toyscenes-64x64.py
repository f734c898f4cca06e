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
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(
            stages=dict(type='ModuleOutputs', source='backbone'),
            fpn=dict(type='ModuleOutputs', source='neck')),
        teacher_recorders=dict(
            stages=dict(type='ModuleOutputs', source='backbone'),
            fpn=dict(type='ModuleOutputs', source='neck')),
        distill_losses=dict(
            loss_boundary=dict(type='BoundaryLoss', loss_weight=1.0),
            loss_context=dict(type='ContextLoss', tau=0.1, loss_weight=1.0)),
        loss_forward_mappings=dict(
            loss_boundary=dict(
                feats_S=dict(from_student=True, recorder='stages'),
                feats_T=dict(from_student=False, recorder='stages')),
            loss_context=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=0),
                preds_T=dict(from_student=False, recorder='fpn',
                             data_idx=0)))))
val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
