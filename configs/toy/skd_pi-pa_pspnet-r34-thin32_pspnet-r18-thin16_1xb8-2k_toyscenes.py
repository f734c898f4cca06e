# Structured KD, pixel-wise + pair-wise terms. The pair-wise term compares the
# affinity graphs of the PSP bottleneck features (teacher 64 channels,
# student 32: no connector needed), nodes from 0.5x0.5 max-pooled windows as
# in the official code; l_pa = 0.5 as in its released script.
_base_ = ['./skd_pi_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py']
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
