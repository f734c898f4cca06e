# What every PKD-on-FPN config shares (configs/pkd/): the FPN outputs of
# student and teacher, recorded whole, and one PKDLoss per level compared at
# the same index. mmrazor's published PKD configs distil the first four
# levels (P2..P5, or P3..P6 for RetinaNet-style necks); the fifth is left
# out. Its configs weight every level's loss by 6 or by 10; a config picks
# one of the two `distill_losses` below.
pkd_fpn_num_levels = 4
# One recorder dict for each side: a config that named one dict for both
# would share it, and an edit of one side (--cfg-options, or cfg in Python)
# would change the other.
pkd_fpn_student_recorders = dict(
    fpn=dict(type='ModuleOutputs', source='neck'))
pkd_fpn_teacher_recorders = dict(
    fpn=dict(type='ModuleOutputs', source='neck'))
pkd_fpn_loss_forward_mappings = {
    f'loss_pkd_fpn{i}': dict(
        preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
        preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
    for i in range(pkd_fpn_num_levels)
}
pkd_fpn_losses_weight6 = {
    name: dict(type='PKDLoss', loss_weight=6)
    for name in pkd_fpn_loss_forward_mappings
}
pkd_fpn_losses_weight10 = {
    name: dict(type='PKDLoss', loss_weight=10)
    for name in pkd_fpn_loss_forward_mappings
}
