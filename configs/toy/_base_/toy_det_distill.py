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
