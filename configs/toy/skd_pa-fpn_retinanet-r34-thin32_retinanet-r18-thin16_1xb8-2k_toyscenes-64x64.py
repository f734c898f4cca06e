# Structured KD, pair-wise term on every FPN level (the detection setting of
# the TPAMI extension of SKD), toy RetinaNet teacher -> toy student. The
# whole FPN tuple feeds one PairWiseLoss, which sums over levels. Every
# position is a node (scale=None: exact, via the Gram identity), since FPN
# levels are already small and 0.5-pooling would leave 2x2 nodes per level.
# Weight 1 per level (our choice; not a published setting). Only the
# teacher's backbone and neck run.
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
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        teacher_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        distill_losses=dict(
            loss_pa_fpn=dict(type='PairWiseLoss', scale=None,
                             loss_weight=1.0)),
        loss_forward_mappings=dict(
            loss_pa_fpn=dict(
                preds_S=dict(from_student=True, recorder='fpn'),
                preds_T=dict(from_student=False, recorder='fpn')))))

val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
