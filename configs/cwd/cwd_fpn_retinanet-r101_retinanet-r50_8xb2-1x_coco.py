# Channel-wise distillation (Shu et al., ICCV 2021) on every FPN level,
# RetinaNet-R101 (teacher, mmdet model zoo, 2x, 38.9 box AP) -> RetinaNet-R50
# (1x, 36.5 box AP alone) on COCO: mmrazor's published detection setting,
# one ChannelWiseDivergence per level (tau 1, weight 10) fed with data_idx.
# The student's own config is the base: its data, 1x schedule and optimizer
# (SGD lr 0.01, 8 GPUs x 2 images) are kept. Only the teacher's backbone and
# neck run (teacher_forward_mode 'auto' -> 'feat').
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    '../_base_/distill/cwd_fpn.py'
]
custom_imports = dict(imports=['mmstructkd'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_r101_fpn_2x_coco/retinanet_r101_fpn_2x_coco_20200131-5560aee8.pth'  # noqa: E501
teacher_cfg_path = 'mmdet::retinanet/retinanet_r101_fpn_2x_coco.py'
student_cfg_path = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
model = dict(
    _delete_=True,
    _scope_='mmstructkd',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path=student_cfg_path, pretrained=False),
    teacher=dict(cfg_path=teacher_cfg_path, pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders={{_base_.cwd_fpn_student_recorders}},
        teacher_recorders={{_base_.cwd_fpn_teacher_recorders}},
        distill_losses={{_base_.cwd_fpn_losses}},
        loss_forward_mappings={{_base_.cwd_fpn_loss_forward_mappings}}))

val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
