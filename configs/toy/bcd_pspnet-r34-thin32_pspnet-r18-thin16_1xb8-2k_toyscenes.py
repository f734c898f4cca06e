# Boundary and context distillation (BCD; reconstructed, see README):
# label-free boundary maps of the four backbone stages matched between teacher
# and student, plus logit distillation weighted toward the teacher's
# boundaries; context = the pixel-to-pixel relations of the PSP bottleneck
# features (64 teacher / 32 student channels), KL per row. Weights untuned.
_base_ = ['./cwd_logits_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py']
model = dict(
    distiller=dict(
        student_recorders=dict(
            _delete_=True,
            stages=dict(type='ModuleOutputs', source='backbone'),
            logits=dict(type='ModuleOutputs', source='decode_head.conv_seg'),
            feat=dict(type='ModuleOutputs', source='decode_head.bottleneck')),
        teacher_recorders=dict(
            _delete_=True,
            stages=dict(type='ModuleOutputs', source='backbone'),
            logits=dict(type='ModuleOutputs', source='decode_head.conv_seg'),
            feat=dict(type='ModuleOutputs', source='decode_head.bottleneck')),
        distill_losses=dict(
            _delete_=True,
            loss_boundary=dict(type='BoundaryLoss', loss_weight=1.0,
                               boundary_kd_weight=1.0, alpha=1.0),
            loss_context=dict(type='ContextLoss', tau=0.1, loss_weight=1.0)),
        loss_forward_mappings=dict(
            _delete_=True,
            loss_boundary=dict(
                feats_S=dict(from_student=True, recorder='stages'),
                feats_T=dict(from_student=False, recorder='stages'),
                logits_S=dict(from_student=True, recorder='logits'),
                logits_T=dict(from_student=False, recorder='logits')),
            loss_context=dict(
                preds_S=dict(from_student=True, recorder='feat'),
                preds_T=dict(from_student=False, recorder='feat')))))
