# The bundled synthetic street scenes as a COCO detection set (boxes of the
# thing classes car, person, sign), read by mmdet's CocoDataset and scored by
# its CocoMetric. TOY_DATA_ROOT overrides the location (tests point it at a
# temporary set). Pictures are resized to fit 64x64 whatever size they were
# generated at, so a training step stays cheap on CPU.
# mmdet's own CocoDataset with the toy classes (what
# mmstructkd.ToySceneCocoDataset holds), not our subclass: mmdet's
# init_detector builds the test data set of a config to read its palette, so
# an exported student config must not name an mmstructkd type.
dataset_type = 'CocoDataset'
metainfo = dict(
    classes=('car', 'person', 'sign'),
    palette=[(0, 0, 142), (220, 20, 60), (220, 220, 0)])
data_root = '{{$TOY_DATA_ROOT:data/toy_scenes}}'
img_scale = (64, 64)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor')),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        metainfo=metainfo,
        data_root=data_root,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='img_dir/train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=1),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        metainfo=metainfo,
        data_root=data_root,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='img_dir/val/'),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + '/annotations/instances_val.json',
    metric='bbox',
    format_only=False)
test_evaluator = val_evaluator
