# FBKD (Zhang and Ma, ICLR 2021) on every FPN level, toy Faster R-CNN teacher
# -> toy student: attention-masked feature imitation, pooled-attention terms
# and non-local relation distillation, one FBKDLoss per level with
# mmrazor's default weights. Each level has its own student connector (its
# non-local block and adaptation layers map the student's 16 channels to the
# teacher's 32) and its own teacher connector (the teacher-side non-local
# block, trained by the relation term). The FPN levels of a 64x64 image are
# 16, 8, 4, 2 and 1 pixels wide: the non-local blocks sub-sample only the
# two finest levels (to 4x4), where mmrazor's COCO config pools by 8 and 4.
# Only the teacher's backbone and neck run.
_base_ = [
    './faster-rcnn_r18-thin16_fpn_1xb8-2k_toyscenes-64x64.py',
    './_base_/toy_det_distill.py'
]
num_levels = 5
# (sub_sample, maxpool_stride) of the non-local blocks, per level.
non_local_pooling = [(True, 4), (True, 2), (False, 2), (False, 2), (False, 2)]
model = dict(
    _delete_=True,
    _scope_='mmstructkd',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path={{_base_.faster_rcnn_student_cfg_path}}),
    teacher=dict(cfg_path={{_base_.faster_rcnn_teacher_cfg_path}}),
    teacher_ckpt={{_base_.faster_rcnn_teacher_ckpt}},
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        teacher_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        connectors={
            **{
                f'fbkd_fpn{i}_s': dict(
                    type='FBKDStudentConnector',
                    in_channels=16,
                    teacher_channels=32,
                    mode='dot_product',
                    sub_sample=non_local_pooling[i][0],
                    maxpool_stride=non_local_pooling[i][1])
                for i in range(num_levels)
            },
            **{
                f'fbkd_fpn{i}_t': dict(
                    type='FBKDTeacherConnector',
                    in_channels=32,
                    mode='dot_product',
                    sub_sample=non_local_pooling[i][0],
                    maxpool_stride=non_local_pooling[i][1])
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

val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
