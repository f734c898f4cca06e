"""The toy street scenes: determinism, idempotence, layout, and that mmseg,
mmdet and pycocotools read what the generator writes."""
import importlib.util
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.registry import DefaultScope
from PIL import Image

from mmstructkd.datasets.toy_scene_coco import ToySceneCocoDataset
from mmstructkd.datasets.toy_scene_seg import ToySceneSegDataset
from mmstructkd.toy_data import (CLASSES, COCO_CATEGORY_IDS, PALETTE,
                                 THING_CLASSES, generate_toy_scenes,
                                 make_scene, mask_to_rle, render_scene,
                                 save_montage, tight_bbox)

NUM_TRAIN, NUM_VAL, SIZE = 8, 4, 64
SMALL = dict(num_train=NUM_TRAIN, num_val=NUM_VAL, size=SIZE)
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _files(root):
    """Relative path -> bytes of every file under root."""
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = osp.join(folder, name)
            with open(path, 'rb') as f:
                found[osp.relpath(path, root)] = f.read()
    return found


def _label(root, split, name):
    return np.array(Image.open(osp.join(root, 'ann_dir', split,
                                        name + '.png')))


def _read_lines(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('toy') / 'toy_scenes')
    assert generate_toy_scenes(root, seed=0, **SMALL) is True
    return root


# --------------------------------------------------------------------------
# Determinism and idempotence
# --------------------------------------------------------------------------
def test_same_seed_same_bytes_other_seed_other_pictures(toy_root, tmp_path):
    again = str(tmp_path / 'again')
    other = str(tmp_path / 'other')
    generate_toy_scenes(again, seed=0, **SMALL)
    generate_toy_scenes(other, seed=1, **SMALL)
    first, second, third = _files(toy_root), _files(again), _files(other)
    assert sorted(first) == sorted(second)
    for rel in first:
        assert first[rel] == second[rel], rel
    pictures = [rel for rel in first if rel.startswith('img_dir')]
    assert len(pictures) == NUM_TRAIN + NUM_VAL
    assert all(first[rel] != third[rel] for rel in pictures)


def test_picture_does_not_depend_on_set_size(toy_root):
    # Image i has its own random stream: a bigger set starts the same.
    scene = make_scene(0, 'train', 3, SIZE)
    png = np.array(Image.open(osp.join(toy_root, 'img_dir/train/'
                                       'train_00003.png')))
    np.testing.assert_array_equal(scene.image, png)
    assert not np.array_equal(
        make_scene(0, 'val', 3, SIZE).image, scene.image)


def test_second_run_does_nothing_and_new_arguments_regenerate(
        tmp_path, capsys):
    root = str(tmp_path / 'toy')
    assert generate_toy_scenes(root, verbose=True, **SMALL) is True
    stamps = {
        rel: os.stat(osp.join(root, rel)).st_mtime_ns
        for rel in _files(root)
    }
    capsys.readouterr()
    assert generate_toy_scenes(root, verbose=True, **SMALL) is False
    assert 'nothing to do' in capsys.readouterr().out
    assert stamps == {
        rel: os.stat(osp.join(root, rel)).st_mtime_ns
        for rel in _files(root)
    }

    # A missing file makes the set incomplete: regenerate.
    os.remove(osp.join(root, 'ann_dir/val/val_00001.png'))
    assert generate_toy_scenes(root, **SMALL) is True
    assert osp.isfile(osp.join(root, 'ann_dir/val/val_00001.png'))

    # Fewer pictures: the old ones must not linger.
    assert generate_toy_scenes(root, num_train=5, num_val=2, size=SIZE)
    assert len(os.listdir(osp.join(root, 'img_dir/train'))) == 5
    assert len(os.listdir(osp.join(root, 'ann_dir/val'))) == 2
    with open(osp.join(root, 'manifest.json')) as f:
        assert json.load(f)['params']['num_train'] == 5
    assert generate_toy_scenes(
        root, num_train=5, num_val=2, size=SIZE, force=True) is True


def test_command_line_tool(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        'make_toy_data', osp.join(REPO_ROOT, 'tools', 'make_toy_data.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = str(tmp_path / 'cli')
    montage = str(tmp_path / 'montage.png')
    argv = [
        '--out', out, '--num-train', '4', '--num-val', '2', '--size', '48',
        '--seed', '3', '--holdout-fraction', '0.25', '--object-scale', '1.2',
        '--min-depth', '0.3'
    ]
    tool.main(argv + ['--montage', montage])
    assert 'wrote' in capsys.readouterr().out
    with open(osp.join(out, 'manifest.json')) as f:
        params = json.load(f)['params']
    assert (params['num_train'], params['num_val'], params['size'],
            params['seed'], params['holdout_fraction'], params['object_scale'],
            params['min_depth']) == (4, 2, 48, 3, 0.25, 1.2, 0.3)
    assert len(_read_lines(osp.join(out, 'splits/train_holdout.txt'))) == 1
    assert Image.open(montage).mode == 'RGB'
    tool.main(argv)
    assert 'nothing to do' in capsys.readouterr().out
    assert tool.parse_args([]).out == osp.join(REPO_ROOT, 'data',
                                               'toy_scenes')


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match='holdout_fraction must be in'):
        generate_toy_scenes(str(tmp_path), holdout_fraction=1.0, **SMALL)
    with pytest.raises(ValueError, match='at least 1'):
        generate_toy_scenes(str(tmp_path), num_train=0, num_val=1, size=64)
    with pytest.raises(ValueError, match='size >= 32'):
        render_scene(16, np.random.default_rng(0))


def test_bad_layout_is_refused(tmp_path):
    with pytest.raises(ValueError, match='object_scale must be > 0'):
        generate_toy_scenes(str(tmp_path), object_scale=0, **SMALL)
    with pytest.raises(ValueError, match=r'min_depth must be in \[0, 1\)'):
        render_scene(SIZE, np.random.default_rng(0), min_depth=1.0)
    assert not osp.exists(osp.join(str(tmp_path), 'manifest.json'))


def _visible_areas(**layout):
    areas = []
    for index in range(40):
        scene = make_scene(0, 'train', index, 96, **layout)
        areas += [int(mask.sum()) for mask in scene.visible_masks()]
    return np.array(areas)


def test_detection_layout_draws_larger_nearer_objects():
    # The same random streams, so the scenes differ by the layout alone.
    plain = _visible_areas()
    near = _visible_areas(object_scale=1.5, min_depth=0.55)
    # The scale alone gives 1.5 ** 2 the area; the nearer rows add to it.
    assert np.median(near) > 1.5 ** 2 * np.median(plain), (
        np.median(near), np.median(plain))
    # Far objects of a few pixels are what the layout leaves out.
    assert np.mean(near < 25) < 0.5 * np.mean(plain < 25)


def test_layout_is_recorded_only_when_not_the_default(tmp_path, capsys):
    plain, near = str(tmp_path / 'plain'), str(tmp_path / 'near')
    generate_toy_scenes(plain, **SMALL)
    generate_toy_scenes(near, object_scale=1.5, min_depth=0.55,
                        verbose=True, **SMALL)
    assert 'objects x1.5, depth >= 0.55' in capsys.readouterr().out
    with open(osp.join(plain, 'manifest.json')) as f:
        # A set written before the layout options existed still matches.
        assert set(json.load(f)['params']) == {
            'generator_version', 'num_train', 'num_val', 'size', 'seed',
            'holdout_fraction', 'min_area'}
    with open(osp.join(near, 'manifest.json')) as f:
        params = json.load(f)['params']
    assert (params['object_scale'], params['min_depth']) == (1.5, 0.55)
    # Another layout is another set: it is regenerated, not reused.
    assert generate_toy_scenes(near, **SMALL) is True


# --------------------------------------------------------------------------
# Content and layout
# --------------------------------------------------------------------------
def test_layout_and_splits(toy_root):
    for split, count in (('train', NUM_TRAIN), ('val', NUM_VAL)):
        names = sorted(
            osp.splitext(n)[0]
            for n in os.listdir(osp.join(toy_root, 'img_dir', split)))
        assert names == [f'{split}_{i:05d}' for i in range(count)]
        assert names == sorted(
            osp.splitext(n)[0]
            for n in os.listdir(osp.join(toy_root, 'ann_dir', split)))
        assert _read_lines(osp.join(toy_root, 'splits', split + '.txt')) \
            == names
        picture = Image.open(osp.join(toy_root, 'img_dir', split,
                                      names[0] + '.png'))
        label = Image.open(osp.join(toy_root, 'ann_dir', split,
                                    names[0] + '.png'))
        assert (picture.mode, picture.size) == ('RGB', (SIZE, SIZE))
        assert (label.mode, label.size) == ('L', (SIZE, SIZE))

    fit = _read_lines(osp.join(toy_root, 'splits/train_fit.txt'))
    holdout = _read_lines(osp.join(toy_root, 'splits/train_holdout.txt'))
    assert len(holdout) == round(0.2 * NUM_TRAIN)
    assert not set(fit) & set(holdout)
    assert sorted(fit + holdout) == [
        f'train_{i:05d}' for i in range(NUM_TRAIN)
    ]
    train = _coco(toy_root, 'train')
    for subset, names in (('train_fit', fit), ('train_holdout', holdout)):
        coco = _coco(toy_root, subset)
        assert [im['file_name'] for im in coco['images']] == \
            [n + '.png' for n in names]
        ids = {im['id'] for im in coco['images']}
        assert coco['annotations'] == [
            a for a in train['annotations'] if a['image_id'] in ids
        ]


def _coco(root, subset):
    with open(osp.join(root, 'annotations', f'instances_{subset}.json')) as f:
        return json.load(f)


def test_every_class_appears_and_labels_are_in_range(toy_root):
    seen = np.zeros(256, dtype=np.int64)
    for split, count in (('train', NUM_TRAIN), ('val', NUM_VAL)):
        for i in range(count):
            label = _label(toy_root, split, f'{split}_{i:05d}')
            seen += np.bincount(label.ravel(), minlength=256)
    assert seen[len(CLASSES):].sum() == 0
    assert (seen[:len(CLASSES)] > 0).all(), seen[:len(CLASSES)]
    categories = {a['category_id'] for a in _coco(toy_root,
                                                   'train')['annotations']}
    assert categories == {1, 2, 3}
    assert [c['name'] for c in _coco(toy_root, 'val')['categories']] == \
        list(THING_CLASSES)


def test_instances_agree_with_the_class_map():
    for index in range(6):
        scene = make_scene(5, 'train', index, 80)
        things = np.isin(scene.label, list(COCO_CATEGORY_IDS))
        np.testing.assert_array_equal(things, scene.instance_ids > 0)
        assert scene.instance_ids.max() == len(scene.instance_classes)
        for cls, mask in zip(scene.instance_classes, scene.visible_masks()):
            assert mask.any()
            assert (scene.label[mask] == cls).all()


def test_colour_alone_does_not_find_the_things():
    """A colour lookup table fit on the very pixels it is scored on (the
    most a per-pixel colour rule can do) still misses most thing pixels:
    shape and layout, not colour, tell the classes apart."""
    images, labels = [], []
    for index in range(30):
        scene = make_scene(0, 'train', index, 64)
        images.append(scene.image.reshape(-1, 3))
        labels.append(scene.label.ravel())
    colour = np.concatenate(images).astype(np.int64) // 32  # 8 bins/channel
    label = np.concatenate(labels)
    bins = colour[:, 0] * 64 + colour[:, 1] * 8 + colour[:, 2]
    table = np.zeros((512, len(CLASSES)), dtype=np.int64)
    np.add.at(table, (bins, label), 1)
    predicted = table.argmax(1)[bins]
    for cls in COCO_CATEGORY_IDS:
        recall = (predicted[label == cls] == cls).mean()
        assert recall < 0.5, (CLASSES[cls], recall)


def test_road_and_sidewalk_need_context_in_some_scenes():
    """In about a third of the scenes the road is paved like the sidewalk:
    even a colour table fit on the scene's own road and sidewalk pixels
    then misses most of one of the two classes."""
    from mmstructkd.toy_data.classes import ROAD, SIDEWALK
    colour_blind = 0
    for index in range(40):
        scene = make_scene(0, 'train', index, 64)
        label = scene.label.ravel()
        ground = (label == ROAD) | (label == SIDEWALK)
        colour = scene.image.reshape(-1, 3)[ground].astype(np.int64) // 32
        bins = colour[:, 0] * 64 + colour[:, 1] * 8 + colour[:, 2]
        is_road = (label[ground] == ROAD).astype(np.int64)
        table = np.zeros((512, 2), dtype=np.int64)
        np.add.at(table, (bins, is_road), 1)
        predicted = table.argmax(1)[bins]
        recalls = [(predicted[is_road == k] == k).mean() for k in (0, 1)]
        colour_blind += min(recalls) < 0.6
    assert 8 <= colour_blind <= 24, colour_blind


def test_tiny_instances_are_kept_as_crowd_regions():
    """Instances whose visible part is below ``min_area`` pixels stay in the
    COCO files with ``iscrowd=1`` (ignored by training and evaluation)
    instead of vanishing, so a detection on them is not a false positive."""
    from mmstructkd.toy_data.coco import scene_annotations
    crowd = normal = 0
    for index in range(40):
        scene = make_scene(0, 'train', index, 64)
        annotations = scene_annotations(scene, min_area=8)
        assert len(annotations) == len(scene.instance_classes)
        for annotation in annotations:
            assert annotation['iscrowd'] == int(annotation['area'] < 8)
            crowd += annotation['iscrowd']
            normal += 1 - annotation['iscrowd']
    assert crowd > 0 and normal > crowd, (crowd, normal)


@pytest.mark.parametrize('shape', [(7, 5), (1, 9), (13, 1), (31, 17)])
def test_rle_matches_pycocotools(shape):
    from pycocotools import mask as mask_utils
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    masks = [
        rng.random(shape) < 0.5,
        np.ones(shape, bool),
        np.zeros(shape, bool),
        rng.random(shape) < 0.05,
    ]
    for mask in masks:
        ours = mask_to_rle(mask)
        theirs = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert ours == {
            'size': list(theirs['size']),
            'counts': theirs['counts'].decode()
        }
        np.testing.assert_array_equal(mask_utils.decode(ours), mask)


def test_tight_bbox():
    mask = np.zeros((9, 11), bool)
    mask[2, 3] = mask[6, 8] = True
    assert tight_bbox(mask) == [3.0, 2.0, 6.0, 5.0]


# --------------------------------------------------------------------------
# Read by mmseg and mmdet
# --------------------------------------------------------------------------
def test_registered_for_configs():
    from mmdet.registry import DATASETS as DET_DATASETS
    from mmseg.registry import DATASETS as SEG_DATASETS

    from mmstructkd.registry import DATASETS
    assert DATASETS.get('ToySceneSegDataset') is ToySceneSegDataset
    assert DATASETS.get('ToySceneCocoDataset') is ToySceneCocoDataset
    # What an mmseg / mmdet config names.
    assert SEG_DATASETS.get('mmstructkd.ToySceneSegDataset') is \
        ToySceneSegDataset
    assert DET_DATASETS.get('mmstructkd.ToySceneCocoDataset') is \
        ToySceneCocoDataset
    assert ToySceneSegDataset.METAINFO == dict(classes=CLASSES,
                                               palette=PALETTE)


def test_mmseg_reads_the_segmentation_layout(toy_root):
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='PackSegInputs'),
    ]
    with DefaultScope.overwrite_default_scope('mmseg'):
        fit = ToySceneSegDataset(
            data_root=toy_root,
            data_prefix=dict(
                img_path='img_dir/train', seg_map_path='ann_dir/train'),
            ann_file='splits/train_fit.txt',
            pipeline=pipeline)
        val = ToySceneSegDataset(
            data_root=toy_root,
            data_prefix=dict(
                img_path='img_dir/val', seg_map_path='ann_dir/val'),
            pipeline=pipeline)
    assert len(fit) == NUM_TRAIN - round(0.2 * NUM_TRAIN)
    assert len(val) == NUM_VAL
    assert fit.metainfo['classes'] == CLASSES
    assert fit.metainfo['reduce_zero_label'] is False
    for dataset, split in ((fit, 'train'), (val, 'val')):
        item = dataset[0]
        name = osp.splitext(osp.basename(item['data_samples'].img_path))[0]
        assert item['inputs'].shape == (3, SIZE, SIZE)
        gt = item['data_samples'].gt_sem_seg.data
        assert gt.shape == (1, SIZE, SIZE)
        np.testing.assert_array_equal(gt[0].numpy(),
                                      _label(toy_root, split, name))
    # mmcv loads BGR; the PNG holds RGB.
    picture = np.array(Image.open(fit[0]['data_samples'].img_path))
    np.testing.assert_array_equal(fit[0]['inputs'].permute(1, 2, 0).numpy(),
                                  picture[..., ::-1])


def _det_dataset(root, subset, cls=ToySceneCocoDataset, **kwargs):
    split = 'val' if subset == 'val' else 'train'
    with DefaultScope.overwrite_default_scope('mmdet'):
        return cls(
            data_root=root,
            ann_file=f'annotations/instances_{subset}.json',
            data_prefix=dict(img=f'img_dir/{split}/'),
            test_mode=True,
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
                dict(type='PackDetInputs'),
            ],
            **kwargs)


def test_mmdet_reads_the_coco_set_and_boxes_fit_masks(toy_root):
    dataset = _det_dataset(toy_root, 'train')
    plain = _det_dataset(
        toy_root, 'train', cls=_plain_coco(), metainfo=dict(
            classes=THING_CLASSES))
    assert len(dataset) == len(plain) == NUM_TRAIN
    total = ignored = 0
    for index in range(len(dataset)):
        sample = dataset[index]['data_samples']
        # iscrowd regions come as mmdet's ignored instances.
        ignored += len(sample.ignored_instances)
        name = osp.splitext(osp.basename(sample.img_path))[0]
        label = _label(toy_root, 'train', name)
        gt = sample.gt_instances
        masks = gt.masks.to_ndarray().astype(bool)
        boxes = gt.bboxes.tensor.numpy()
        assert len(masks) == len(boxes) == len(gt.labels)
        total += len(boxes)
        for mask, box, cls in zip(masks, boxes, gt.labels.tolist()):
            rows, cols = np.nonzero(mask)
            np.testing.assert_array_equal(
                box, [cols.min(), rows.min(),
                      cols.max() + 1, rows.max() + 1])
            # Label i of mmdet is THING_CLASSES[i]; the class map agrees.
            assert (label[mask] == CLASSES.index(THING_CLASSES[cls])).all()
        np.testing.assert_array_equal(
            plain[index]['data_samples'].gt_instances.bboxes.tensor.numpy(),
            boxes)
    annotations = _coco(toy_root, 'train')['annotations']
    assert total == sum(1 - a['iscrowd'] for a in annotations) > 0
    assert ignored == sum(a['iscrowd'] for a in annotations)


def _plain_coco():
    from mmdet.datasets import CocoDataset
    return CocoDataset


def _evaluate_ground_truth(root, subset, shift=0.0):
    from mmdet.evaluation import CocoMetric
    dataset = _det_dataset(root, subset)
    metric = CocoMetric(
        ann_file=osp.join(root, 'annotations', f'instances_{subset}.json'),
        metric=['bbox', 'segm'])
    metric.dataset_meta = dataset.metainfo
    for index in range(len(dataset)):
        sample = dataset[index]['data_samples']
        gt = sample.gt_instances
        boxes = gt.bboxes.tensor.clone()
        boxes[:, 0::2] += shift
        metric.process({}, [{
            'img_id': sample.img_id,
            'ori_shape': sample.ori_shape,
            'pred_instances': {
                'bboxes': boxes,
                'scores': torch.ones(len(boxes)),
                'labels': gt.labels,
                'masks': torch.from_numpy(gt.masks.to_ndarray()).bool(),
            },
        }])
    return metric.evaluate(len(dataset))


def test_coco_metric_scores_the_ground_truth_as_perfect(toy_root):
    results = _evaluate_ground_truth(toy_root, 'val')
    assert results['coco/bbox_mAP'] == 1.0
    assert results['coco/segm_mAP'] == 1.0
    # The check can fail: boxes moved by 3 pixels are no longer perfect.
    shifted = _evaluate_ground_truth(toy_root, 'val', shift=3.0)
    assert shifted['coco/bbox_mAP'] < 1.0
    assert shifted['coco/segm_mAP'] == 1.0


def test_montage(toy_root, tmp_path):
    path = str(tmp_path / 'montage.png')
    save_montage(toy_root, path, num=3, zoom=2)
    montage = Image.open(path)
    # 3 rows of pictures with 2-pixel gaps, 3 columns, zoomed twice.
    assert montage.size == (2 * (3 * SIZE + 4), 2 * (3 * SIZE + 4))
