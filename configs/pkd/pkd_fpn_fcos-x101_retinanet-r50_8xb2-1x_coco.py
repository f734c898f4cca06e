# PKD (Cao et al., NeurIPS 2022) on the FPN across detector families,
# FCOS-X101-64x4d (teacher, mmdet model zoo, GN head, multi-scale 640-800
# training, 2x, 42.6 box AP) -> RetinaNet-R50 (1x, 36.5 box AP alone) on
# COCO: mmrazor's published setting
# (configs/distill/mmdet/pkd/pkd_fpn_fcos_x101_retina_r50_1x_coco.py,
# 40.3 box AP in its README): one PKDLoss (weight 10, inherited there from
# its RetinaNet-X101 config) on each of the first four FPN levels, picked
# with data_idx (the fifth is not distilled). Both necks give P3..P7, so
# level i of one has the stride of level i of the other. The student's own
# 1x config is the base: its data, 1x schedule (12 epochs, steps at 8 and
# 11, 500-iteration linear warm-up) and optimizer (SGD lr 0.01, 8 GPUs x 2
# images), as mmrazor's config sets them. Both detectors normalise images
# alike (ImageNet mean/std, RGB). Only the teacher's backbone and neck run
# (FpnTeacherDistill).
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    '../_base_/distill/pkd_fpn.py'
]
custom_imports = dict(imports=['mmstructkd'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/fcos/fcos_x101_64x4d_fpn_gn-head_mstrain_640-800_2x_coco/fcos_x101_64x4d_fpn_gn-head_mstrain_640-800_2x_coco-ede514a8.pth'  # noqa: E501
teacher_cfg_path = 'mmdet::fcos/fcos_x101-64x4d_fpn_gn-head_ms-640-800-2x_coco.py'  # noqa: E501
student_cfg_path = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
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
