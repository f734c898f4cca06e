# CrossKD (Wang et al., CVPR 2024), RetinaNet-R101 (teacher, mmdet model
# zoo, 2x, 38.9 box AP) -> RetinaNet-R50 (2x, 37.4 box AP alone; 39.7
# published with CrossKD) on COCO: the paper's setting. The student's
# features after 3 of its 4 tower convs (256 channels, as the teacher's: no
# connector) take the teacher's per-channel statistics and run through the
# teacher's 4th tower conv and final convs. Losses between these cross-head
# predictions and the teacher's own: quality focal loss with the teacher's
# probabilities as targets (beta 1, weight 1) and GIoU of the boxes decoded
# from both sets of anchor deltas (weight 1), each anchor weighted by the
# teacher's top class probability. The student's own 2x config is the base:
# its data, schedule and optimizer (SGD lr 0.01, 8 GPUs x 2 images).
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_2x_coco.py', '../_base_/distill/crosskd.py']
custom_imports = dict(imports=['mmstructkd'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_r101_fpn_2x_coco/retinanet_r101_fpn_2x_coco_20200131-5560aee8.pth'  # noqa: E501
teacher_cfg_path = 'mmdet::retinanet/retinanet_r101_fpn_2x_coco.py'
student_cfg_path = 'mmdet::retinanet/retinanet_r50_fpn_2x_coco.py'
layer = 3  # of stacked_convs=4
num_classes = 80
# RetinaNet's 9 anchors per position: ratios (h/w) 0.5, 1, 2, 3 scales each.
anchor_aspect_ratios = [r for r in (0.5, 1.0, 2.0) for _ in range(3)]
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
        distill_losses=dict(
            loss_cls_kd=dict(type='KDQualityFocalLoss', beta=1,
                             num_classes=num_classes, loss_weight=1.0),
            loss_box_kd=dict(type='BoxGIoUDistillLoss', box_coding='delta',
                             num_classes=num_classes,
                             anchor_aspect_ratios=anchor_aspect_ratios,
                             loss_weight=1.0)),
        loss_forward_mappings={{_base_.crosskd_retinanet_loss_forward_mappings}}))

val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
