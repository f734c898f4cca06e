# Boundary and context distillation (BCD; reconstructed from the method's
# definition, see README), DeepLabV3-R101 -> DeepLabV3-R18 on Cityscapes.
# Boundary maps from the four backbone stages (+ boundary-weighted logit KD),
# context relations of the ASPP bottleneck feature (512 / 128 channels,
# 64x128 positions: computed in chunks of 4096 rows). Weights untuned; no
# published number for this reconstruction.
_base_ = [
    'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/schedules/schedule_80k.py',
    'mmseg::_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmstructkd'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/deeplabv3_r101-d8_512x1024_80k_cityscapes/deeplabv3_r101-d8_512x1024_80k_cityscapes_20200606_113503-9e428899.pth'  # noqa: E501
model = dict(
    _scope_='mmstructkd',
    type='SingleTeacherDistill',
    architecture=dict(
        cfg_path='mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py',  # noqa: E501
        pretrained=False),
    teacher=dict(
        cfg_path='mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py',  # noqa: E501
        pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(
            stages=dict(type='ModuleOutputs', source='backbone'),
            logits=dict(type='ModuleOutputs', source='decode_head.conv_seg'),
            feat=dict(type='ModuleOutputs', source='decode_head.bottleneck')),
        teacher_recorders=dict(
            stages=dict(type='ModuleOutputs', source='backbone'),
            logits=dict(type='ModuleOutputs', source='decode_head.conv_seg'),
            feat=dict(type='ModuleOutputs', source='decode_head.bottleneck')),
        distill_losses=dict(
            loss_boundary=dict(type='BoundaryLoss', loss_weight=1.0,
                               boundary_kd_weight=1.0, alpha=1.0),
            loss_context=dict(type='ContextLoss', tau=0.1, chunk_size=4096,
                              loss_weight=1.0)),
        loss_forward_mappings=dict(
            loss_boundary=dict(
                feats_S=dict(from_student=True, recorder='stages'),
                feats_T=dict(from_student=False, recorder='stages'),
                logits_S=dict(from_student=True, recorder='logits'),
                logits_T=dict(from_student=False, recorder='logits')),
            loss_context=dict(
                preds_S=dict(from_student=True, recorder='feat'),
                preds_T=dict(from_student=False, recorder='feat')))))
val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
