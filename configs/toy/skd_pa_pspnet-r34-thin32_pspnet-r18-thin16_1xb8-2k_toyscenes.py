# Structured KD, pair-wise term alone (pooled nodes, as skd_pi-pa without
# the pixel-wise term): affinity graphs of the PSP bottleneck features,
# 0.5x0.5 max-pooled windows, l_pa = 0.5. Used by the accuracy benchmark to
# measure each term on its own.
_base_ = ['./cwd_logits_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py']
model = dict(
    distiller=dict(
        student_recorders=dict(
            _delete_=True,
            feat=dict(type='ModuleOutputs', source='decode_head.bottleneck')),
        teacher_recorders=dict(
            _delete_=True,
            feat=dict(type='ModuleOutputs', source='decode_head.bottleneck')),
        distill_losses=dict(
            _delete_=True,
            loss_pa=dict(type='PairWiseLoss', scale=0.5, loss_weight=0.5)),
        loss_forward_mappings=dict(
            _delete_=True,
            loss_pa=dict(
                preds_S=dict(from_student=True, recorder='feat'),
                preds_T=dict(from_student=False, recorder='feat')))))
