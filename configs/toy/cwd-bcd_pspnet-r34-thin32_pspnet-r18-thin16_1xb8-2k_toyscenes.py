# CWD on the logits combined with BCD in one distiller: the losses simply
# add up (each has its own recorders, mapping and weight).
_base_ = ['./bcd_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py']
model = dict(
    distiller=dict(
        distill_losses=dict(
            loss_cwd=dict(type='ChannelWiseDivergence', tau=1,
                          loss_weight=5)),
        loss_forward_mappings=dict(
            loss_cwd=dict(
                preds_S=dict(from_student=True, recorder='logits'),
                preds_T=dict(from_student=False, recorder='logits')))))
