# Structured KD, pair-wise term on every FPN level (the detection setting of
# the TPAMI extension of SKD, Y. Liu, C. Shu, J. Wang, C. Shen, "Structured
# Knowledge Distillation for Dense Prediction", IEEE TPAMI 2020: FCOS,
# pair-wise on all FPN levels), FCOS-R101-caffe (teacher, mmdet model zoo,
# 1x, 39.1 box AP) ->
# FCOS-R50-caffe (1x, 36.6 box AP alone) on COCO. Teacher and student share
# the caffe-style input normalisation (the algorithm preprocesses once, with
# the student's settings, for both). The whole FPN tuple feeds one
# PairWiseLoss, summed over the 5 levels P3..P7; every position is a node
# (scale=None: exact through the Gram identity, O(C^2 M) per level, never an
# M x M matrix; P3 of an 800x1333 image has M = 100x167 nodes). The weight
# (1 per level) is our choice, not a published value. The student's own
# config is the base (data, 1x schedule, SGD lr 0.01 with
# FCOS's bias settings and gradient clipping, 8 GPUs x 2 images). Only the
# teacher's backbone and neck run (teacher_forward_mode 'auto' -> 'feat').
_base_ = ['mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py']
custom_imports = dict(imports=['mmstructkd'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/fcos/fcos_r101_caffe_fpn_gn-head_1x_coco/fcos_r101_caffe_fpn_gn-head_1x_coco-0e37b982.pth'  # noqa: E501
teacher_cfg_path = 'mmdet::fcos/fcos_r101-caffe_fpn_gn-head-1x_coco.py'
student_cfg_path = 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py'
model = dict(
    _delete_=True,
    _scope_='mmstructkd',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path=student_cfg_path, pretrained=False),
    teacher=dict(cfg_path=teacher_cfg_path, pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        teacher_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        distill_losses=dict(
            loss_pa_fpn=dict(type='PairWiseLoss', scale=None,
                             loss_weight=1.0)),
        loss_forward_mappings=dict(
            loss_pa_fpn=dict(
                preds_S=dict(from_student=True, recorder='fpn'),
                preds_T=dict(from_student=False, recorder='fpn')))))

val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
