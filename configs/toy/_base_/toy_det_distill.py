# Shared by the toy detection distillation configs: teachers and students
# from the toy detector configs and the teachers' checkpoints. Tests pass
# their own with --cfg-options model.teacher_ckpt=...
retinanet_teacher_ckpt = 'work_dirs/toy/retinanet_teacher.pth'
retinanet_teacher_cfg_path = 'mmstructkd::toy/retinanet_r34-thin32_fpn_1xb8-2k_toyscenes-64x64.py'  # noqa: E501
retinanet_student_cfg_path = 'mmstructkd::toy/retinanet_r18-thin16_fpn_1xb8-2k_toyscenes-64x64.py'  # noqa: E501
faster_rcnn_teacher_ckpt = 'work_dirs/toy/faster-rcnn_teacher.pth'
faster_rcnn_teacher_cfg_path = 'mmstructkd::toy/faster-rcnn_r34-thin32_fpn_1xb8-2k_toyscenes-64x64.py'  # noqa: E501
faster_rcnn_student_cfg_path = 'mmstructkd::toy/faster-rcnn_r18-thin16_fpn_1xb8-2k_toyscenes-64x64.py'  # noqa: E501
mask_rcnn_teacher_ckpt = 'work_dirs/toy/mask-rcnn_teacher.pth'
mask_rcnn_teacher_cfg_path = 'mmstructkd::toy/mask-rcnn_r34-thin32_fpn_1xb8-2k_toyscenes-64x64.py'  # noqa: E501
mask_rcnn_student_cfg_path = 'mmstructkd::toy/mask-rcnn_r18-thin16_fpn_1xb8-2k_toyscenes-64x64.py'  # noqa: E501
# The GFL pair of the detection proxy (96x96 scenes of the detection layout).
gfl_teacher_ckpt = 'work_dirs/toy/gfl_teacher.pth'
gfl_teacher_cfg_path = 'mmstructkd::toy/gfl_r34-thin32_fpn_1xb8-2k_toyscenes-det-96x96.py'  # noqa: E501
gfl_student_cfg_path = 'mmstructkd::toy/gfl_r18-thin16_fpn_1xb8-2k_toyscenes-det-96x96.py'  # noqa: E501
# BCD on a detector (shared by the RetinaNet and Mask R-CNN toy configs):
# boundary maps of the four backbone stages, context relations of the finest
# FPN level (P2). No logits: detectors have no per-pixel class map.
bcd_fpn_distiller = dict(
    type='ConfigurableDistiller',
    student_recorders=dict(
        stages=dict(type='ModuleOutputs', source='backbone'),
        fpn=dict(type='ModuleOutputs', source='neck')),
    teacher_recorders=dict(
        stages=dict(type='ModuleOutputs', source='backbone'),
        fpn=dict(type='ModuleOutputs', source='neck')),
    distill_losses=dict(
        loss_boundary=dict(type='BoundaryLoss', loss_weight=1.0),
        loss_context=dict(type='ContextLoss', tau=0.1, loss_weight=1.0)),
    loss_forward_mappings=dict(
        loss_boundary=dict(
            feats_S=dict(from_student=True, recorder='stages'),
            feats_T=dict(from_student=False, recorder='stages')),
        loss_context=dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=0),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=0))))
