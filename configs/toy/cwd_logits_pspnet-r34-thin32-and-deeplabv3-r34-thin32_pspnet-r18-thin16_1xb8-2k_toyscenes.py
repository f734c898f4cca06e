# Multi-teacher channel-wise distillation of the segmentation logits: two
# toy teachers of different architectures (PSPNet and DeepLabV3, both on a
# ResNetV1c-34 with 32 base channels) into the toy PSPNet student, CWD on
# each teacher's logits (tau=1, weight 5 each, as the single-teacher toy
# config), the two losses summed.
# `make demo` trains the PSPNet teacher (work_dirs/toy/teacher.pth); train
# the DeepLabV3 teacher with tools/train.py on
# configs/toy/deeplabv3_r34-d8-thin32_1xb8-2k_toyscenes.py and point
# model.teachers.deeplabv3.ckpt at its checkpoint (--cfg-options; see
# docs/methods/multi_teacher.md).
_base_ = [
    './pspnet_r18-d8-thin16_1xb8-2k_toyscenes.py', './_base_/toy_distill.py'
]
model = dict(
    _delete_=True,
    _scope_='mmstructkd',
    type='MultiTeacherDistill',
    architecture=dict(cfg_path={{_base_.student_cfg_path}}),
    teachers=dict(
        pspnet=dict(
            cfg_path={{_base_.teacher_cfg_path}},
            ckpt={{_base_.teacher_ckpt}}),
        deeplabv3=dict(
            cfg_path='mmstructkd::toy/deeplabv3_r34-d8-thin32_1xb8-2k_'
            'toyscenes.py',
            ckpt='work_dirs/toy/deeplabv3/teacher.pth')),
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(
            logits=dict(type='ModuleOutputs', source='decode_head.conv_seg')),
        teacher_recorders=dict(
            pspnet=dict(
                logits=dict(
                    type='ModuleOutputs', source='decode_head.conv_seg')),
            deeplabv3=dict(
                logits=dict(
                    type='ModuleOutputs', source='decode_head.conv_seg'))),
        distill_losses=dict(
            loss_cwd_pspnet=dict(
                type='ChannelWiseDivergence', tau=1, loss_weight=5),
            loss_cwd_deeplabv3=dict(
                type='ChannelWiseDivergence', tau=1, loss_weight=5)),
        loss_forward_mappings=dict(
            loss_cwd_pspnet=dict(
                preds_S=dict(from_student=True, recorder='logits'),
                preds_T=dict(
                    from_student=False, teacher='pspnet',
                    recorder='logits')),
            loss_cwd_deeplabv3=dict(
                preds_S=dict(from_student=True, recorder='logits'),
                preds_T=dict(
                    from_student=False, teacher='deeplabv3',
                    recorder='logits')))))

val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
