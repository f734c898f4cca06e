# CrossKD (Wang et al., CVPR 2024), toy RetinaNet teacher -> toy student:
# the student's head features after its first tower conv (32 channels; a
# 1x1 conv per tower widens them to the teacher's 64, then they take the
# teacher's per-channel statistics) run through the teacher's second tower
# conv and final convs. The cross-head predictions mimic the teacher's own:
# quality focal loss with the teacher's probabilities as targets on the
# classes, GIoU of the decoded boxes (each anchor weighted by the teacher's
# top class probability). The teacher runs its backbone, neck and head once,
# without gradients; the cross-head pass through its layers carries the
# student's gradients only.
_base_ = [
    './retinanet_r18-thin16_fpn_1xb8-2k_toyscenes-64x64.py',
    './_base_/toy_det_distill.py', '../_base_/distill/crosskd.py'
]
layer = 1  # of the heads' stacked_convs=2
num_classes = 3
# RetinaNet's 9 anchors per position: ratios (h/w) 0.5, 1, 2, 3 scales each.
anchor_aspect_ratios = [r for r in (0.5, 1.0, 2.0) for _ in range(3)]
model = dict(
    _delete_=True,
    _scope_='mmstructkd',
    type='CrossKDDistill',
    architecture=dict(cfg_path={{_base_.retinanet_student_cfg_path}}),
    teacher=dict(cfg_path={{_base_.retinanet_teacher_cfg_path}}),
    teacher_ckpt={{_base_.retinanet_teacher_ckpt}},
    cross_head=dict(layer=layer, connector=('cross_cls', 'cross_reg')),
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(
            cls_feat=dict(type='ModuleOutputs',
                          source=f'bbox_head.cls_convs.{layer - 1}'),
            reg_feat=dict(type='ModuleOutputs',
                          source=f'bbox_head.reg_convs.{layer - 1}'),
            cross_preds=dict(type='HeadPredictions', source='bbox_head')),
        teacher_recorders={{_base_.crosskd_teacher_recorders}},
        # Student head width 32, teacher's 64.
        connectors=dict(
            cross_cls=dict(type='ConvModuleConnector', in_channel=32,
                           out_channel=64, norm_cfg=None),
            cross_reg=dict(type='ConvModuleConnector', in_channel=32,
                           out_channel=64, norm_cfg=None)),
        distill_losses=dict(
            loss_cls_kd=dict(type='KDQualityFocalLoss', beta=1,
                             num_classes=num_classes, loss_weight=1.0),
            loss_box_kd=dict(type='BoxGIoUDistillLoss', box_coding='delta',
                             num_classes=num_classes,
                             anchor_aspect_ratios=anchor_aspect_ratios,
                             loss_weight=1.0)),
        loss_forward_mappings={{_base_.crosskd_retinanet_loss_forward_mappings}}))

val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
