# Structured KD, all three terms (the paper's full method): + holistic
# adversarial distillation, WGAN-GP with a SAGAN-style critic on the logits
# (l_ho = 0.1, l_gp = 10), critic optimizer lr 4e-4. Published: 74.08 mIoU.
_base_ = ['./skd_pi-pa_pspnet-r101-d8_pspnet-r18-d8_4xb2-40k_cityscapes-512x512.py']
model = dict(
    discriminator=dict(
        type='SAGANDiscriminator', num_classes=19, input_mode='logits'),
    discriminator_loss=dict(type='DiscriminatorLoss', loss_type='wgan',
                            gp_weight=10.0),
    discriminator_inputs=dict(
        preds_S=dict(from_student=True, recorder='logits'),
        preds_T=dict(from_student=False, recorder='logits')),
    distiller=dict(
        distill_losses=dict(
            loss_ho=dict(type='AdversarialGeneratorLoss', loss_weight=0.1)),
        loss_forward_mappings=dict(
            loss_ho=dict(preds_S=dict(from_student=True, recorder='logits')))))
optim_wrapper = dict(
    _delete_=True,
    constructor='mmstructkd.SeparateOptimWrapperConstructor',
    architecture=dict(
        type='OptimWrapper',
        optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4),
        clip_grad=None),
    discriminator=dict(
        type='OptimWrapper',
        optimizer=dict(type='Adam', lr=4e-4, betas=(0.9, 0.99))))
param_scheduler = dict(
    _delete_=True,
    architecture=[
        dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=40000,
             by_epoch=False)
    ],
    discriminator=[
        dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=40000,
             by_epoch=False)
    ])
