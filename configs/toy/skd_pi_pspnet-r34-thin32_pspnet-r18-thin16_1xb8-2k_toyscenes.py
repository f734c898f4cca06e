# Structured KD, pixel-wise term only (Liu et al., 2019): KL between the
# per-pixel class distributions of teacher and student logits, l_pi = 10.
_base_ = ['./cwd_logits_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py']
model = dict(
    distiller=dict(
        distill_losses=dict(
            _delete_=True,
            loss_pi=dict(type='PixelWiseLoss', tau=1.0, loss_weight=10.0)),
        loss_forward_mappings=dict(
            _delete_=True,
            loss_pi=dict(
                preds_S=dict(from_student=True, recorder='logits'),
                preds_T=dict(from_student=False, recorder='logits')))))
