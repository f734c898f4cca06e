# MGD (Yang et al., "Masked Generative Distillation", ECCV 2022) on every FPN
# level, RetinaNet-X101-64x4d (teacher, mmdet model zoo, 1x, 41.0 box AP) ->
# RetinaNet-R50 (2x, 37.4 box AP alone) on COCO: mmrazor's published setting
# (configs/distill/mmdet/mgd/mgd_fpn_retina_x101_retina_r50_2x_coco.py, 41.0
# box AP in its README). Per level, an MGDConnector masks 65% of the
# student's positions at random and a conv3x3-ReLU-conv3x3 generator
# reconstructs the teacher's level from the rest; the loss is
# alpha * sum (G - T)^2 / N with alpha 2e-5. Both FPNs have 256 channels (no
# align conv). mmrazor records neck.fpn_convs.{0..4}.conv: RetinaNet's FPN
# convs have no norm or activation, so these are the neck's five outputs,
# picked here with data_idx. As in mmrazor, the student's neck and head start
# from the teacher's checkpoint (its backbone from ImageNet). The student's
# own 2x config is the base: data, 2x schedule, SGD lr 0.01, 8 GPUs x 2
# images (mmrazor's optimizer_config grad_clip is an mmdet 2.x key that
# mmengine ignores: no clipping there either). Each level has its own
# connector (trained with the student, dropped at export) and mask seed.
# Only the teacher's backbone and neck run (FpnTeacherDistill).
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_2x_coco.py']
custom_imports = dict(imports=['mmstructkd'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_x101_64x4d_fpn_1x_coco/retinanet_x101_64x4d_fpn_1x_coco_20200130-366f5af1.pth'  # noqa: E501
teacher_cfg_path = 'mmdet::retinanet/retinanet_x101-64x4d_fpn_1x_coco.py'
student_cfg_path = 'mmdet::retinanet/retinanet_r50_fpn_2x_coco.py'
num_levels = 5
model = dict(
    _delete_=True,
    _scope_='mmstructkd',
    type='FpnTeacherDistill',
    architecture=dict(
        cfg_path=student_cfg_path,
        pretrained=False,
        cfg_options={
            'model.neck.init_cfg':
            dict(type='Pretrained', prefix='neck.', checkpoint=teacher_ckpt),
            'model.bbox_head.init_cfg':
            dict(
                type='Pretrained', prefix='bbox_head.',
                checkpoint=teacher_ckpt)
        }),
    teacher=dict(cfg_path=teacher_cfg_path, pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        teacher_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        connectors={
            f'mgd_fpn{i}': dict(
                type='MGDConnector',
                student_channels=256,
                teacher_channels=256,
                lambda_mgd=0.65,
                seed=i)
            for i in range(num_levels)
        },
        distill_losses={
            f'loss_mgd_fpn{i}': dict(type='MGDLoss', alpha_mgd=2e-5)
            for i in range(num_levels)
        },
        loss_forward_mappings={
            f'loss_mgd_fpn{i}': dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=i,
                             connector=f'mgd_fpn{i}'),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
            for i in range(num_levels)
        }))

find_unused_parameters = True

val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
