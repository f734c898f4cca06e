# mmrazor's configs/distill/mmseg/cwd config in its published form, on the
# toy PSPNets and the toy segmentation set, with every argument of mmrazor's
# SingleTeacherDistill that a config may carry. calculate_student_loss=False:
# the student trains on the distillation loss only.
_base_ = [
    '../../../configs/toy/_base_/datasets/toyscenes_seg.py',
    '../../../configs/toy/_base_/schedules/toy_2k.py'
]

teacher_ckpt = None
teacher_cfg_path = 'mmstructkd::toy/pspnet_r34-d8-thin32_1xb8-2k_toyscenes.py'  # noqa: E501
student_cfg_path = 'mmstructkd::toy/pspnet_r18-d8-thin16_1xb8-2k_toyscenes.py'  # noqa: E501
model = dict(
    _scope_='mmrazor',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path=student_cfg_path, pretrained=False),
    teacher=dict(cfg_path=teacher_cfg_path, pretrained=False),
    teacher_ckpt=teacher_ckpt,
    teacher_trainable=False,
    teacher_norm_eval=True,
    student_trainable=True,
    calculate_student_loss=False,
    distiller=dict(
        type='ConfigurableDistiller',
        distill_losses=dict(
            loss_cwd=dict(type='ChannelWiseDivergence', tau=1, loss_weight=5)),
        student_recorders=dict(
            logits=dict(type='ModuleOutputs', source='decode_head.conv_seg')),
        teacher_recorders=dict(
            logits=dict(type='ModuleOutputs', source='decode_head.conv_seg')),
        loss_forward_mappings=dict(
            loss_cwd=dict(
                preds_S=dict(from_student=True, recorder='logits'),
                preds_T=dict(from_student=False, recorder='logits')))))

find_unused_parameters = True

val_cfg = dict(_delete_=True, type='mmrazor.SingleTeacherDistillValLoop')
