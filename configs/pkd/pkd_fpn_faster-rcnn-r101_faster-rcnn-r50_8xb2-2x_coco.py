# PKD (Cao et al., "PKD: General Distillation Framework for Object Detectors
# via Pearson Correlation Coefficient", NeurIPS 2022) on the FPN, Faster
# R-CNN-R101 (teacher, mmdet model zoo, 2x, 39.8 box AP) -> Faster R-CNN-R50
# (2x, 38.4 box AP alone) on COCO: mmrazor's published setting
# (configs/distill/mmdet/pkd/pkd_fpn_faster-rcnn_r101_faster-rcnn_r50_2x_coco.py,
# 40.3 box AP in its README): one PKDLoss (weight 6) on each of the first
# four FPN levels P2..P5, picked with data_idx (P6 is not distilled). The
# student's own 2x config is the base: its data, 2x schedule and optimizer
# (SGD lr 0.02, 8 GPUs x 2 images), as mmrazor's config uses. Only the
# teacher's backbone and neck run (FpnTeacherDistill).
_base_ = [
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py',
    '../_base_/distill/pkd_fpn.py'
]
custom_imports = dict(imports=['mmstructkd'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/faster_rcnn_r101_fpn_2x_coco/faster_rcnn_r101_fpn_2x_coco_bbox_mAP-0.398_20200504_210455-1d2dac9c.pth'  # noqa: E501
teacher_cfg_path = 'mmdet::faster_rcnn/faster-rcnn_r101_fpn_2x_coco.py'
student_cfg_path = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py'
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
        distill_losses={{_base_.pkd_fpn_losses_weight6}},
        loss_forward_mappings={{_base_.pkd_fpn_loss_forward_mappings}}))

find_unused_parameters = True

val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
