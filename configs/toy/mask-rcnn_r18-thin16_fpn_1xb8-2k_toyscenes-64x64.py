# Toy instance-segmentation student: Mask R-CNN on the thin Faster R-CNN
# (ResNet-18, 16 base channels, 16-channel FPN) with a small FCN mask head.
_base_ = [
    './_base_/models/faster-rcnn_r18-thin_fpn.py',
    './_base_/datasets/toyscenes_ins.py', './_base_/schedules/toy_det_2k.py'
]
model = dict(
    type='MaskRCNN',
    roi_head=dict(
        mask_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=0),
            out_channels=16,
            featmap_strides=[4, 8, 16, 32],
            finest_scale=8),
        mask_head=dict(
            type='FCNMaskHead',
            num_convs=2,
            in_channels=16,
            conv_out_channels=16,
            num_classes=3,
            loss_mask=dict(
                type='CrossEntropyLoss', use_mask=True, loss_weight=1.0))),
    train_cfg=dict(rcnn=dict(mask_size=28)),
    test_cfg=dict(rcnn=dict(mask_thr_binary=0.5)))
