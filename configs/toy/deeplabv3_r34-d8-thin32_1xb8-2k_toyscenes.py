# Toy teacher of another architecture: DeepLabV3 (an ASPP head instead of
# PSPNet's pyramid pooling) on the toy teacher's ResNetV1c-34 with 32 base
# channels, same data and classes. The second teacher of the toy
# multi-teacher config; ASPP dilations scaled down to the toy maps (12x12
# at 1/8 of 96x96).
_base_ = ['./pspnet_r34-d8-thin32_1xb8-2k_toyscenes.py']
model = dict(
    decode_head=dict(
        _delete_=True,
        type='ASPPHead',
        in_channels=256,
        in_index=3,
        channels=64,
        dilations=(1, 2, 4, 6),
        dropout_ratio=0.1,
        num_classes={{_base_.num_classes}},
        norm_cfg={{_base_.norm_cfg}},
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
