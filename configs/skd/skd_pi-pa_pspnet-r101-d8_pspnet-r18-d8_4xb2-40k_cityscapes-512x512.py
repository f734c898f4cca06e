# Structured KD, pixel-wise + pair-wise (official weights: l_pa = 0.5 at
# scale 0.5, on the decode head's feature after the PSP module and its 3x3
# bottleneck: 512 channels teacher / 128 student). Published: 71.78 mIoU.
_base_ = ['./skd_pi_pspnet-r101-d8_pspnet-r18-d8_4xb2-40k_cityscapes-512x512.py']
model = dict(
    distiller=dict(
        student_recorders=dict(
            feat=dict(type='ModuleOutputs', source='decode_head.bottleneck')),
        teacher_recorders=dict(
            feat=dict(type='ModuleOutputs', source='decode_head.bottleneck')),
        distill_losses=dict(
            loss_pa=dict(type='PairWiseLoss', scale=0.5, loss_weight=0.5)),
        loss_forward_mappings=dict(
            loss_pa=dict(
                preds_S=dict(from_student=True, recorder='feat'),
                preds_T=dict(from_student=False, recorder='feat')))))
