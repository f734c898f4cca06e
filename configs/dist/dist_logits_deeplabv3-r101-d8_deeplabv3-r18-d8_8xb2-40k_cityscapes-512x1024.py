# DIST (Huang et al., NeurIPS 2022) on the segmentation logits,
# DeepLabV3-R101 (teacher, mmseg model zoo, 80.20 mIoU) -> DeepLabV3-R18 on
# Cityscapes, in the setting of the DIST_KD segmentation code (CIRKD
# codebase): 512x1024 crops, batch 16 (8 GPUs x 2), 40k iterations, SGD
# lr 0.02 poly; DIST with tau 1, both relation terms weight 1, on the decode
# head's logits (weight 1) and on the auxiliary head's (weight 0.4, as the
# student's own auxiliary loss). Published: 74.21 -> 77.10 mIoU with their
# own 78.07 mIoU teacher and model code; this config uses mmseg's models.
_base_ = [
    'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/schedules/schedule_40k.py',
    'mmseg::_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmstructkd'], allow_failed_imports=False)
# Batch 16 instead of mmseg's 8: the learning rate of the published setting.
optim_wrapper = dict(optimizer=dict(lr=0.02))

teacher_ckpt = 'https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/deeplabv3_r101-d8_512x1024_80k_cityscapes/deeplabv3_r101-d8_512x1024_80k_cityscapes_20200606_113503-9e428899.pth'  # noqa: E501
teacher_cfg_path = 'mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py'  # noqa: E501
student_cfg_path = 'mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py'  # noqa: E501
model = dict(
    _scope_='mmstructkd',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path=student_cfg_path, pretrained=False),
    teacher=dict(cfg_path=teacher_cfg_path, pretrained=False),
    teacher_ckpt=teacher_ckpt,
    # The auxiliary head runs only when losses are computed.
    teacher_forward_mode='loss',
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(
            logits=dict(type='ModuleOutputs', source='decode_head.conv_seg'),
            aux_logits=dict(
                type='ModuleOutputs', source='auxiliary_head.conv_seg')),
        teacher_recorders=dict(
            logits=dict(type='ModuleOutputs', source='decode_head.conv_seg'),
            aux_logits=dict(
                type='ModuleOutputs', source='auxiliary_head.conv_seg')),
        distill_losses=dict(
            loss_dist=dict(type='DISTLoss', tau=1.0, inter_weight=1.0,
                           intra_weight=1.0, loss_weight=1.0),
            loss_dist_aux=dict(type='DISTLoss', tau=1.0, inter_weight=1.0,
                               intra_weight=1.0, loss_weight=0.4)),
        loss_forward_mappings=dict(
            loss_dist=dict(
                preds_S=dict(from_student=True, recorder='logits'),
                preds_T=dict(from_student=False, recorder='logits')),
            loss_dist_aux=dict(
                preds_S=dict(from_student=True, recorder='aux_logits'),
                preds_T=dict(from_student=False, recorder='aux_logits')))))

val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
