# Channel-wise distillation of features instead of logits: the PSP
# bottleneck (student 32 channels, teacher 64; a 1x1 conv + BN connector
# lifts the student's to 64, trained with the student and dropped at export).
# tau = 4 as the CWD paper uses for feature maps; weight 3 (see the accuracy
# benchmark for how the toy weights were chosen). Recorders as skd_pa.
_base_ = ['./skd_pa_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py']
model = dict(
    distiller=dict(
        connectors=dict(
            feat_adapter=dict(type='ConvModuleConnector', in_channel=32,
                              out_channel=64)),
        distill_losses=dict(
            _delete_=True,
            loss_cwd=dict(type='ChannelWiseDivergence', tau=4,
                          loss_weight=3)),
        loss_forward_mappings=dict(
            _delete_=True,
            loss_cwd=dict(
                preds_S=dict(from_student=True, recorder='feat',
                             connector='feat_adapter'),
                preds_T=dict(from_student=False, recorder='feat')))))
