# Shared by the toy distillation configs: teacher and student from the toy
# configs, and the teacher's checkpoint. `make demo` trains the teacher and
# writes its checkpoint there; tests pass their own with
# --cfg-options model.teacher_ckpt=...
teacher_ckpt = 'work_dirs/toy/teacher.pth'
teacher_cfg_path = 'mmstructkd::toy/pspnet_r34-d8-thin32_1xb8-2k_toyscenes.py'
student_cfg_path = 'mmstructkd::toy/pspnet_r18-d8-thin16_1xb8-2k_toyscenes.py'
