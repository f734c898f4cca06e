# Toy instance-segmentation teacher: Mask R-CNN, ResNet-34 with 32 base
# channels, 32-channel FPN and mask head.
_base_ = ['./mask-rcnn_r18-thin16_fpn_1xb8-2k_toyscenes-64x64.py']
model = dict(
    backbone=dict(depth=34, stem_channels=32, base_channels=32),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=32),
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32),
        bbox_head=dict(in_channels=32, fc_out_channels=128),
        mask_roi_extractor=dict(out_channels=32),
        mask_head=dict(in_channels=32, conv_out_channels=32)))
