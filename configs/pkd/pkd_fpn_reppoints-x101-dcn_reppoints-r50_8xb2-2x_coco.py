# PKD (Cao et al., NeurIPS 2022) on the FPN, RepPoints-X101-32x4d with
# deformable convolutions in stages c3-c5 (teacher, mmdet model zoo, GN
# neck and head, moment transform, 2x, 44.2 box AP) -> RepPoints-R50 (same
# GN neck and head, 2x, 38.6 box AP alone) on COCO: mmrazor's published
# setting (configs/distill/mmdet/pkd/
# pkd_fpn_reppoints_x101-dcn_reppoints_r50_2x_coco.py, 42.3 box AP in its
# README): one PKDLoss (weight 10, inherited there from its RetinaNet-X101
# config) on each of the first four FPN levels P3..P6, picked with data_idx
# (P7 is not distilled). The student's own 2x config is the base: its
# data, 2x schedule and optimizer (SGD lr 0.01, 8 GPUs x 2 images), as
# mmrazor's config sets them. Only the teacher's backbone and neck run
# (FpnTeacherDistill). mmcv's DeformConv2d is in the teacher's backbone
# (stages c3-c5) and in both RepPoints heads.
_base_ = [
    'mmdet::reppoints/reppoints-moment_r50_fpn-gn_head-gn_2x_coco.py',
    '../_base_/distill/pkd_fpn.py'
]
custom_imports = dict(imports=['mmstructkd'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/reppoints/reppoints_moment_x101_fpn_dconv_c3-c5_gn-neck%2Bhead_2x_coco/reppoints_moment_x101_fpn_dconv_c3-c5_gn-neck%2Bhead_2x_coco_20200329-f87da1ea.pth'  # noqa: E501
teacher_cfg_path = 'mmdet::reppoints/reppoints-moment_x101-dconv-c3-c5_fpn-gn_head-gn_2x_coco.py'  # noqa: E501
student_cfg_path = 'mmdet::reppoints/reppoints-moment_r50_fpn-gn_head-gn_2x_coco.py'  # noqa: E501
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
