# Toy GFL student (generalized focal loss, Li et al., 2020): the toy
# RetinaNet student's backbone and 32-channel FPN (P2..P6) with a GFL head
# (one anchor per position, quality focal loss, box-side distributions of
# 9 bins, ATSS assignment), on the detection proxy: 96x96 scenes of the
# detection layout (toyscenes_det-96x96.py). Learning rate 0.02, twice the
# toy schedule's, as in the runs that sized this proxy.
_base_ = [
    './_base_/models/retinanet_r18-thin_fpn.py',
    './_base_/datasets/toyscenes_det-96x96.py',
    './_base_/schedules/toy_det_2k.py'
]
optim_wrapper = dict(optimizer=dict(lr=0.02))
model = dict(
    type='GFL',
    bbox_head=dict(
        _delete_=True,
        type='GFLHead',
        num_classes=3,
        in_channels=32,
        stacked_convs=2,
        feat_channels=32,
        norm_cfg=dict(type='GN', num_groups=8, requires_grad=True),
        anchor_generator=dict(
            type='AnchorGenerator',
            ratios=[1.0],
            octave_base_scale=4,
            scales_per_octave=1,
            strides=[4, 8, 16, 32, 64]),
        loss_cls=dict(
            type='QualityFocalLoss',
            use_sigmoid=True,
            beta=2.0,
            loss_weight=1.0),
        loss_dfl=dict(type='DistributionFocalLoss', loss_weight=0.25),
        reg_max=8,
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0)),
    train_cfg=dict(
        _delete_=True,
        assigner=dict(type='ATSSAssigner', topk=9),
        allowed_border=-1,
        pos_weight=-1,
        debug=False))
