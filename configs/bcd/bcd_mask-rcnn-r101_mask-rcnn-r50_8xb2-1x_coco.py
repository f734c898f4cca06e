# BCD (reconstructed) for instance segmentation on COCO: Mask R-CNN-R101
# (mmdet model zoo, 1x: 40.0 box / 36.1 mask AP) -> Mask R-CNN-R50 (1x),
# with the terms of the Faster R-CNN config; masks loaded and evaluated.
# Weights untuned; no published number for this reconstruction.
_base_ = ['./bcd_faster-rcnn-r101_faster-rcnn-r50_8xb2-1x_coco.py']

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/mask_rcnn/mask_rcnn_r101_fpn_1x_coco/mask_rcnn_r101_fpn_1x_coco_20200204-1efe0ed5.pth'  # noqa: E501
model = dict(
    architecture=dict(
        cfg_path='mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'),
    teacher=dict(cfg_path='mmdet::mask_rcnn/mask-rcnn_r101_fpn_1x_coco.py'),
    teacher_ckpt=teacher_ckpt)
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
val_evaluator = dict(metric=['bbox', 'segm'])
test_evaluator = dict(metric=['bbox', 'segm'])
