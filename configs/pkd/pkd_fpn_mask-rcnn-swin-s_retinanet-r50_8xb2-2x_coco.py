# PKD (Cao et al., NeurIPS 2022) on the FPN across detector families and
# backbones, Mask R-CNN with a Swin-S backbone (teacher, mmdet model zoo,
# multi-scale crop training, 3x, 48.2 box AP) -> RetinaNet-R50 (2x, 37.4 box
# AP alone) on COCO: mmrazor's published setting
# (configs/distill/mmdet/pkd/pkd_fpn_mask-rcnn_swin_retina_r50_2x_coco.py,
# 41.5 box AP in its README): one PKDLoss (weight 6, set there explicitly)
# on each of the first four FPN levels, picked with data_idx (the fifth is
# not distilled). The two necks start at different strides: the teacher's
# levels are P2..P5 (strides 4..32), the student's P3..P6 (8..64), so level
# i of the student is half the size of level i of the teacher and PKDLoss
# resizes it bilinearly to the teacher's size (resize_stu=True, its default,
# as in mmrazor). The student's own 2x config is the base: its data, 2x
# schedule and optimizer (SGD lr 0.01, 8 GPUs x 2 images), as mmrazor's
# config sets them (mmrazor loads COCO through mmdet's instance-segmentation
# dataset config, masks included, which the RetinaNet student never uses;
# both evaluate box AP only). Both detectors normalise images alike
# (ImageNet mean/std, RGB). Only the teacher's backbone and neck run
# (FpnTeacherDistill): its RPN, box and mask heads are never used.
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_2x_coco.py',
    '../_base_/distill/pkd_fpn.py'
]
custom_imports = dict(imports=['mmstructkd'], allow_failed_imports=False)

# The Swin-S 3x weights that mmrazor's config loads (its README and
# metafile link the Swin-T 1x checkpoint instead, which does not fit this
# Swin-S teacher config).
teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/swin/mask_rcnn_swin-s-p4-w7_fpn_fp16_ms-crop-3x_coco/mask_rcnn_swin-s-p4-w7_fpn_fp16_ms-crop-3x_coco_20210903_104808-b92c91f1.pth'  # noqa: E501
teacher_cfg_path = 'mmdet::swin/mask-rcnn_swin-s-p4-w7_fpn_amp-ms-crop-3x_coco.py'  # noqa: E501
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
        distill_losses={{_base_.pkd_fpn_losses_weight6}},
        loss_forward_mappings={{_base_.pkd_fpn_loss_forward_mappings}}))

find_unused_parameters = True

val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
