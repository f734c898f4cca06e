# CrossKD (Wang et al., CVPR 2024), GFL-R101 (teacher, mmdet model zoo,
# multi-scale 2x, 44.7 box AP; 44.9 in the paper's table) -> GFL-R50 (1x,
# 40.2 box AP alone; 43.7 published with CrossKD) on COCO: the paper's
# setting. The student's features after 3 of its 4 tower convs (both
# towers; 256 channels, as the teacher's, so no connector) take the
# teacher's per-channel statistics and run through the teacher's 4th tower
# conv, final convs and scales. Losses between these cross-head predictions
# and the teacher's own: quality focal loss with the teacher's probabilities
# as targets (beta 1, weight 1), KL of the box-side distributions (weight 3)
# and GIoU of the decoded boxes (weight 2), the box terms weighted by the
# teacher's top class probability. The student's own config is the base:
# its data, 1x schedule and optimizer (SGD lr 0.01, 8 GPUs x 2 images).
_base_ = ['mmdet::gfl/gfl_r50_fpn_1x_coco.py', '../_base_/distill/crosskd.py']
custom_imports = dict(imports=['mmstructkd'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/gfl/gfl_r101_fpn_mstrain_2x_coco/gfl_r101_fpn_mstrain_2x_coco_20200629_200126-dd12f847.pth'  # noqa: E501
teacher_cfg_path = 'mmdet::gfl/gfl_r101_fpn_ms-2x_coco.py'
student_cfg_path = 'mmdet::gfl/gfl_r50_fpn_1x_coco.py'
layer = 3  # of stacked_convs=4
model = dict(
    _delete_=True,
    _scope_='mmstructkd',
    type='CrossKDDistill',
    architecture=dict(cfg_path=student_cfg_path, pretrained=False),
    teacher=dict(cfg_path=teacher_cfg_path, pretrained=False),
    teacher_ckpt=teacher_ckpt,
    cross_head=dict(layer=layer),
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(
            cls_feat=dict(type='ModuleOutputs',
                          source=f'bbox_head.cls_convs.{layer - 1}'),
            reg_feat=dict(type='ModuleOutputs',
                          source=f'bbox_head.reg_convs.{layer - 1}'),
            cross_preds=dict(type='HeadPredictions', source='bbox_head')),
        teacher_recorders={{_base_.crosskd_teacher_recorders}},
        distill_losses={{_base_.crosskd_gfl_distill_losses}},
        loss_forward_mappings={{_base_.crosskd_gfl_loss_forward_mappings}}))

val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
