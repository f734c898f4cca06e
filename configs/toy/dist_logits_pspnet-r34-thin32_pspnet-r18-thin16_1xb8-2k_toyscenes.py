# DIST (Huang et al., 2022) on the segmentation logits, toy teacher -> toy
# student: per pixel, the Pearson correlation of the class probabilities
# (inter-class relation); per class, their correlation over all the pixels
# of the batch (intra-class relation). tau 1, both terms weight 1, loss
# weight 1, as in the DIST_KD segmentation code (untuned here).
_base_ = [
    './pspnet_r18-d8-thin16_1xb8-2k_toyscenes.py', './_base_/toy_distill.py'
]
model = dict(
    _delete_=True,
    _scope_='mmstructkd',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path={{_base_.student_cfg_path}}),
    teacher=dict(cfg_path={{_base_.teacher_cfg_path}}),
    teacher_ckpt={{_base_.teacher_ckpt}},
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(
            logits=dict(type='ModuleOutputs', source='decode_head.conv_seg')),
        teacher_recorders=dict(
            logits=dict(type='ModuleOutputs', source='decode_head.conv_seg')),
        distill_losses=dict(
            loss_dist=dict(type='DISTLoss', tau=1, inter_weight=1,
                           intra_weight=1, loss_weight=1)),
        loss_forward_mappings=dict(
            loss_dist=dict(
                preds_S=dict(from_student=True, recorder='logits'),
                preds_T=dict(from_student=False, recorder='logits')))))

val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
