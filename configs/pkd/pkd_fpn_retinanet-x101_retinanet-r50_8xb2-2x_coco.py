# PKD (Cao et al., NeurIPS 2022) on the FPN, RetinaNet-X101-64x4d (teacher,
# mmdet model zoo, 1x, 41.0 box AP) -> RetinaNet-R50 (2x, 37.4 box AP alone)
# on COCO: mmrazor's published setting
# (configs/distill/mmdet/pkd/pkd_fpn_retina_x101_retina_r50_2x_coco.py,
# 40.8 box AP in its README): one PKDLoss (weight 10) on each of the first
# four FPN levels, picked with data_idx (the fifth is not distilled). The
# student's own 2x config is the base: its data, 2x schedule and optimizer
# (SGD lr 0.01, no gradient clipping, 8 GPUs x 2 images), as mmrazor's
# config sets them. Only the teacher's backbone and neck run
# (FpnTeacherDistill).
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_2x_coco.py',
    '../_base_/distill/pkd_fpn.py'
]
custom_imports = dict(imports=['mmstructkd'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_x101_64x4d_fpn_1x_coco/retinanet_x101_64x4d_fpn_1x_coco_20200130-366f5af1.pth'  # noqa: E501
teacher_cfg_path = 'mmdet::retinanet/retinanet_x101-64x4d_fpn_1x_coco.py'
student_cfg_path = 'mmdet::retinanet/retinanet_r50_fpn_2x_coco.py'
model = dict(
    _delete_=True,
    _scope_='mmstructkd',
    type='FpnTeacherDistill',
    architecture=dict(cfg_path=student_cfg_path, pretrained=False),
    teacher=dict(cfg_path=teacher_cfg_path, pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders={{_base_.pkd_fpn_student_recorders}},
        teacher_recorders={{_base_.pkd_fpn_teacher_recorders}},
        distill_losses={{_base_.pkd_fpn_losses_weight10}},
        loss_forward_mappings={{_base_.pkd_fpn_loss_forward_mappings}}))

find_unused_parameters = True

val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
