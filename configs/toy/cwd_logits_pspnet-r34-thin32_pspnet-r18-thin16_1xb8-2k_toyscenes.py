# Channel-wise distillation of the segmentation logits (Shu et al., 2021),
# toy teacher -> toy student. tau=1, weight 5 as mmrazor's Cityscapes config.
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
            loss_cwd=dict(type='ChannelWiseDivergence', tau=1,
                          loss_weight=5)),
        loss_forward_mappings=dict(
            loss_cwd=dict(
                preds_S=dict(from_student=True, recorder='logits'),
                preds_T=dict(from_student=False, recorder='logits')))))

val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
