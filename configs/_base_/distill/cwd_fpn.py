# What every CWD-on-FPN detection config shares (configs/cwd/*_coco.py and
# the toy detectors'): mmrazor's published detection setting. The FPN
# outputs of student and teacher are recorded whole and each of the five
# levels gets its own ChannelWiseDivergence (tau 1, weight 10), fed with
# data_idx. Only the teacher's backbone and neck run (teacher_forward_mode
# 'auto' -> 'feat').
cwd_fpn_num_levels = 5
# One recorder dict for each side: a config that named one dict for both
# would share it, and an edit of one side (--cfg-options, or cfg in Python)
# would change the other.
cwd_fpn_student_recorders = dict(
    fpn=dict(type='ModuleOutputs', source='neck'))
cwd_fpn_teacher_recorders = dict(
    fpn=dict(type='ModuleOutputs', source='neck'))
cwd_fpn_losses = {
    f'loss_cwd_fpn{i}': dict(
        type='ChannelWiseDivergence', tau=1, loss_weight=10)
    for i in range(cwd_fpn_num_levels)
}
cwd_fpn_loss_forward_mappings = {
    f'loss_cwd_fpn{i}': dict(
        preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
        preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
    for i in range(cwd_fpn_num_levels)
}
