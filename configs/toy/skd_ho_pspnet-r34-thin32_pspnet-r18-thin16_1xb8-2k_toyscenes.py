# Holistic (adversarial) term alone: the student is trained against the
# SAGAN-style WGAN-GP critic on the logits (l_ho = 0.1), with no pixel-wise
# or pair-wise term. Critic, its optimizer and schedule as skd_pi-pa-ho.
_base_ = ['./skd_pi-pa-ho_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py']
model = dict(
    distiller=dict(
        student_recorders=dict(
            _delete_=True,
            logits=dict(type='ModuleOutputs', source='decode_head.conv_seg')),
        teacher_recorders=dict(
            _delete_=True,
            logits=dict(type='ModuleOutputs', source='decode_head.conv_seg')),
        distill_losses=dict(
            _delete_=True,
            loss_ho=dict(type='AdversarialGeneratorLoss', loss_weight=0.1)),
        loss_forward_mappings=dict(
            _delete_=True,
            loss_ho=dict(preds_S=dict(from_student=True, recorder='logits')))))
