# FBKD (Zhang and Ma, "Improve Object Detection with Feature-based Knowledge
# Distillation: Towards Accurate and Efficient Detectors", ICLR 2021) on the
# FPN, Faster R-CNN-R101 (teacher, mmdet model zoo, 1x, 39.4 box AP) ->
# Faster R-CNN-R50 (1x, 37.4 box AP alone) on COCO: mmrazor's published
# setting (configs/distill/mmdet/fbkd/fbkd_fpn_faster-rcnn_r101_faster-rcnn_r50_1x_coco.py,
# 39.3 box AP in its README): attention-masked feature imitation,
# pooled-attention terms and non-local relation distillation, one FBKDLoss
# (mmrazor's default weights) on each of the first four FPN levels P2..P5.
# Each level has a student connector (non-local block and adaptation layers)
# and a teacher connector (the teacher-side non-local block, trained by the
# relation term); the non-local blocks sub-sample P2 and P3 by max pooling
# (stride 8 and 4, channel reduction 4) and P4, P5 by 2. mmrazor records
# neck.fpn_convs.{0..3}.conv: Faster R-CNN's FPN convs have no norm or
# activation, so these are the neck's first four outputs, picked here with
# data_idx. As in mmrazor, the student starts from its own model-zoo weights
# (pretrained=True: Faster R-CNN-R50 1x). The student's own 1x config is the
# base (data, 1x schedule, SGD lr 0.02, 8 GPUs x 2 images). mmrazor uses
# SingleTeacherDistill here, as this config does; only the teacher's neck is
# recorded, so teacher_forward_mode 'auto' resolves to 'feat': the teacher's
# heads do not run (same recorded tensors, less compute).
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py']
custom_imports = dict(imports=['mmstructkd'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/faster_rcnn_r101_fpn_1x_coco/faster_rcnn_r101_fpn_1x_coco_20200130-f513f705.pth'  # noqa: E501
teacher_cfg_path = 'mmdet::faster_rcnn/faster-rcnn_r101_fpn_1x_coco.py'
student_cfg_path = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
num_levels = 4
# (reduction, maxpool_stride) of the non-local blocks, per level; every
# level is sub-sampled.
non_local = [(4, 8), (4, 4), (2, 2), (2, 2)]
model = dict(
    _delete_=True,
    _scope_='mmstructkd',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path=student_cfg_path, pretrained=True),
    teacher=dict(cfg_path=teacher_cfg_path, pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        teacher_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        connectors={
            **{
                f'fbkd_fpn{i}_s': dict(
                    type='FBKDStudentConnector',
                    in_channels=256,
                    reduction=non_local[i][0],
                    mode='dot_product',
                    sub_sample=True,
                    maxpool_stride=non_local[i][1])
                for i in range(num_levels)
            },
            **{
                f'fbkd_fpn{i}_t': dict(
                    type='FBKDTeacherConnector',
                    in_channels=256,
                    reduction=non_local[i][0],
                    mode='dot_product',
                    sub_sample=True,
                    maxpool_stride=non_local[i][1])
                for i in range(num_levels)
            }
        },
        distill_losses={
            f'loss_fbkd_fpn{i}': dict(type='FBKDLoss')
            for i in range(num_levels)
        },
        loss_forward_mappings={
            f'loss_fbkd_fpn{i}': dict(
                s_input=dict(from_student=True, recorder='fpn', data_idx=i,
                             connector=f'fbkd_fpn{i}_s'),
                t_input=dict(from_student=False, recorder='fpn', data_idx=i,
                             connector=f'fbkd_fpn{i}_t'))
            for i in range(num_levels)
        }))

find_unused_parameters = True

val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
