# CrossKD (Wang et al., CVPR 2024), toy GFL teacher -> toy GFL student: the
# student's head features after its first tower conv (32 channels, widened
# to the teacher's 64 by a 1x1 conv per tower, then given the teacher's
# per-channel statistics) run through the teacher's second tower conv, final
# convs and scales. Losses between these cross-head predictions and the
# teacher's own, as in the paper's GFL setting: quality focal loss with the
# teacher's probabilities as targets (weight 1), KL of the box-side
# distributions (weight 3) and GIoU of the decoded boxes (weight 2), the box
# terms weighted by the teacher's top class probability.
_base_ = [
    './gfl_r18-thin16_fpn_1xb8-2k_toyscenes-det-96x96.py',
    '../_base_/distill/crosskd.py'
]
teacher_ckpt = 'work_dirs/toy/gfl_teacher.pth'
teacher_cfg_path = 'mmstructkd::toy/gfl_r34-thin32_fpn_1xb8-2k_toyscenes-det-96x96.py'  # noqa: E501
student_cfg_path = 'mmstructkd::toy/gfl_r18-thin16_fpn_1xb8-2k_toyscenes-det-96x96.py'  # noqa: E501
layer = 1  # of the heads' stacked_convs=2
model = dict(
    _delete_=True,
    _scope_='mmstructkd',
    type='CrossKDDistill',
    architecture=dict(cfg_path=student_cfg_path),
    teacher=dict(cfg_path=teacher_cfg_path),
    teacher_ckpt=teacher_ckpt,
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
        distill_losses={{_base_.crosskd_gfl_distill_losses}},
        loss_forward_mappings={{_base_.crosskd_gfl_loss_forward_mappings}}))

val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
