# Structured KD, all three terms: pixel-wise, pair-wise and holistic
# (adversarial, WGAN-GP with a SAGAN-style critic on the logits, l_ho = 0.1,
# l_gp = 10). The critic has its own optimizer (Adam 4e-4, betas 0.9/0.99,
# as the later official code) and poly schedule; it steps after the student.
# The critic's num_classes is inferred from the teacher's decode head (set
# model.num_classes to change the class count of student, teacher and critic).
_base_ = ['./skd_pi-pa_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py']
model = dict(
    discriminator=dict(
        type='SAGANDiscriminator',
        base_channels=16,
        input_mode='logits'),
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
        optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4)),
    discriminator=dict(
        type='OptimWrapper',
        optimizer=dict(type='Adam', lr=4e-4, betas=(0.9, 0.99))))
param_scheduler = dict(
    _delete_=True,
    architecture=[
        dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=2000,
             by_epoch=False)
    ],
    discriminator=[
        dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=2000,
             by_epoch=False)
    ])
