"""Bad training data fails with errors that name the problem and the fix:
a label the student's head cannot take (its class count, the value, the
file), and a data set that finds no samples (its folder and data prefix).

The end-to-end cases run tools/train.py on a copy of the tiny toy set with
one file broken, with a random teacher (the tests check errors, not
accuracy).
"""
import glob
import importlib.util
import json
import os
import os.path as osp
import shutil

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.structures import InstanceData, PixelData
from PIL import Image

import mmstructkd  # noqa: F401
from mmstructkd.datasets import (EmptyDatasetError, ToySceneCocoDataset,
                                 ToySceneSegDataset, check_data_folders)
from mmstructkd.models.utils import (LabelSpace, check_labels,
                                     check_student_labels,
                                     student_label_space)

from conftest import REPO_ROOT, toy_config

SEG_STUDENT = 'pspnet_r18-d8-thin16_1xb8-2k_toyscenes.py'
SEG_DISTILL = \
    'cwd_logits_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py'
DET_DISTILL = ('cwd_fpn_retinanet-r34-thin32_retinanet-r18-thin16_1xb8-2k_'
               'toyscenes-64x64.py')
BAD_LABEL_FILE = 'ann_dir/train/train_00003.png'


def load_train_tool():
    """tools/train.py as a module, so a test runs its ``main`` in-process
    (seconds, where a new process would first spend them importing)."""
    spec = importlib.util.spec_from_file_location(
        'mmstructkd_tools_train', osp.join(REPO_ROOT, 'tools', 'train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TRAIN_TOOL = load_train_tool()


def train(config, work_dir, data_root, options=(), monkeypatch=None):
    """One training iteration of a toy config with tools/train.py, over
    the whole 8-image train set (so a broken file is in the batch), no
    validation."""
    monkeypatch.setenv('TOY_DATA_ROOT', data_root)
    TRAIN_TOOL.main([
        toy_config(config), '--work-dir', work_dir, '--cfg-options',
        'train_cfg.max_iters=1', 'train_cfg.val_interval=100',
        'default_hooks.checkpoint.interval=1',
        'train_dataloader.batch_size=8'
    ] + list(options))


def distill(config, work_dir, data_root, options=(), monkeypatch=None):
    """As :func:`train`, with a random teacher (the tests check errors,
    not accuracy)."""
    train(config, work_dir, data_root,
          ['model.teacher_ckpt=None'] + list(options), monkeypatch)


def copy_of(toy_data_root, tmp_path, name='data'):
    root = str(tmp_path / name)
    shutil.copytree(toy_data_root, root)
    return root


def rewrite_label(root, rel, value, pixels):
    path = osp.join(root, rel)
    label = np.array(Image.open(path))
    label.reshape(-1)[pixels] = value
    Image.fromarray(label).save(path)


# --------------------------------------------------------------------------
# Labels out of range, end to end
# --------------------------------------------------------------------------
def test_seg_label_out_of_range_names_classes_value_and_file(
        toy_data_root, tmp_path, monkeypatch):
    root = copy_of(toy_data_root, tmp_path)
    # 255 (the ignore index) next to the bad value: only 9 is reported.
    rewrite_label(root, BAD_LABEL_FILE, 255, slice(0, 10))
    rewrite_label(root, BAD_LABEL_FILE, 9, slice(100, 103))
    work_dir = str(tmp_path / 'work')
    with pytest.raises(ValueError) as info:
        distill(SEG_DISTILL, work_dir, root, monkeypatch=monkeypatch)
    msg = str(info.value)
    assert msg.startswith('Segmentation label out of range: value 9 in '
                          f'{osp.join(root, BAD_LABEL_FILE)}, but the '
                          "student's decode_head has num_classes=8 (valid "
                          'labels 0..7; 255, its ignore_index, marks pixels '
                          'to skip)'), msg
    assert f'  {osp.join(root, BAD_LABEL_FILE)}: [9]\n' in msg
    assert 'reduce_zero_label=True' in msg
    assert not osp.exists(osp.join(work_dir, 'iter_1.pth'))


def test_seg_ignore_index_and_valid_labels_train(toy_data_root, tmp_path,
                                                 monkeypatch):
    root = copy_of(toy_data_root, tmp_path)
    rewrite_label(root, BAD_LABEL_FILE, 255, slice(0, 200))
    rewrite_label(root, 'ann_dir/train/train_00005.png', 4, slice(0, 10))
    work_dir = str(tmp_path / 'work')
    distill(SEG_DISTILL, work_dir, root, monkeypatch=monkeypatch)
    assert osp.exists(osp.join(work_dir, 'iter_1.pth'))


def test_seg_ignore_index_is_read_from_the_student_head(
        toy_data_root, tmp_path, monkeypatch):
    # With decode_head.ignore_index=9, a 9 is skipped and 255 is an error.
    root = copy_of(toy_data_root, tmp_path)
    rewrite_label(root, BAD_LABEL_FILE, 9, slice(0, 10))
    rewrite_label(root, 'ann_dir/train/train_00001.png', 255, slice(0, 10))
    with pytest.raises(ValueError) as info:
        distill(SEG_DISTILL, str(tmp_path / 'work'), root, [
            'model.architecture.cfg_options.model.decode_head.ignore_index=9'
        ], monkeypatch)
    msg = str(info.value)
    assert msg.startswith('Segmentation label out of range: value 255 in'), \
        msg
    assert '(valid labels 0..7; 9, its ignore_index' in msg
    assert 'train_00001.png: [255]' in msg
    assert BAD_LABEL_FILE not in msg


def test_det_label_out_of_range_names_classes_label_and_image(
        toy_data_root, tmp_path, monkeypatch):
    # The data set has 3 thing classes; a student head built for 2 cannot
    # take label 2 ('sign').
    with pytest.raises(ValueError) as info:
        distill(DET_DISTILL, str(tmp_path / 'work'), toy_data_root, [
            'model.architecture.cfg_options.model.bbox_head.num_classes=2'
        ], monkeypatch)
    msg = str(info.value)
    assert msg.startswith('Detection label out of range: box label 2 in '
                          f'{osp.join(toy_data_root, "img_dir", "train")}'), \
        msg
    assert "student's bbox_head has num_classes=2 (valid labels 0..1)" in msg
    assert 'metainfo=dict(classes=...)' in msg


# --------------------------------------------------------------------------
# Empty data sets, end to end and per class
# --------------------------------------------------------------------------
@pytest.mark.parametrize('made', [(), ('img_dir/train', )],
                         ids=['empty-root', 'empty-image-folder'])
def test_empty_folder_names_folder_and_prefix(made, toy_data_root, tmp_path,
                                              monkeypatch):
    empty = str(tmp_path / 'empty')
    os.makedirs(empty)
    for folder in made:
        os.makedirs(osp.join(empty, folder))
    work_dir = str(tmp_path / 'work')
    with pytest.raises(EmptyDatasetError) as info:
        train(SEG_STUDENT, work_dir, toy_data_root,
              [f'train_dataloader.dataset.data_root={empty}'], monkeypatch)
    msg = str(info.value)
    state = 'is empty' if made else 'does not exist'
    # tools/train.py checks the folders before building anything.
    assert msg.startswith('train_dataloader.dataset '
                          '(mmstructkd.ToySceneSegDataset) has no data to '
                          f"read (data_root='{empty}')"), msg
    assert (f"data_prefix img_path='img_dir/train': folder "
            f'{osp.join(empty, "img_dir/train")} {state}') in msg
    assert (f"data_prefix seg_map_path='ann_dir/train': folder "
            f'{osp.join(empty, "ann_dir/train")} does not exist') in msg
    root_state = 'holds no files (only empty folders)' if made else 'is empty'
    assert f"data_root '{empty}' {root_state}" in msg
    assert 'Nothing was trained' in msg
    assert not glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))


def test_empty_folder_of_any_mmseg_dataset_type(tmp_path):
    from mmstructkd.datasets import check_data_folders
    empty = str(tmp_path / 'empty')
    os.makedirs(osp.join(empty, 'images', 'training'))
    with pytest.raises(EmptyDatasetError) as info:
        check_data_folders(dict(
            type='mmseg.ADE20KDataset', data_root=empty,
            data_prefix=dict(img_path='images/training',
                             seg_map_path='annotations/training')))
    msg = str(info.value)
    assert msg.startswith('train_dataloader.dataset (mmseg.ADE20KDataset) '
                          f"has no data to read (data_root='{empty}')"), msg
    assert (f"img_path='images/training': folder "
            f"{osp.join(empty, 'images/training')} is empty") in msg


def seg_dataset(data_root, **kwargs):
    args = dict(
        data_root=data_root,
        data_prefix=dict(img_path='img_dir/train',
                         seg_map_path='ann_dir/train'),
        pipeline=[])
    args.update(kwargs)
    return ToySceneSegDataset(**args)


def test_seg_folder_without_matching_files(toy_data_root, tmp_path):
    root = str(tmp_path / 'jpg')
    os.makedirs(osp.join(root, 'img_dir', 'train'))
    open(osp.join(root, 'img_dir', 'train', 'a.jpg'), 'wb').close()
    with pytest.raises(EmptyDatasetError) as info:
        seg_dataset(root)
    msg = str(info.value)
    assert (f"data_prefix img_path='img_dir/train': folder "
            f"{osp.join(root, 'img_dir/train')} holds files (e.g. 'a.jpg') "
            f"but none ending in '.png'") in msg
    assert "seg_map_path='ann_dir/train'" in msg
    assert 'does not exist' in msg
    # The real set builds.
    assert len(seg_dataset(toy_data_root)) == 8


def test_seg_ann_file_listing_nothing(toy_data_root, tmp_path):
    ann = tmp_path / 'none.txt'
    ann.write_text('')
    with pytest.raises(EmptyDatasetError) as info:
        seg_dataset(toy_data_root, ann_file=str(ann))
    assert f"ann_file='{ann}': {ann} exists but lists no samples" in \
        str(info.value)


def coco_dataset(data_root, ann_file, **kwargs):
    return ToySceneCocoDataset(
        data_root=data_root, ann_file=ann_file,
        data_prefix=dict(img='img_dir/train/'), pipeline=[], **kwargs)


def test_coco_without_images_or_with_all_filtered(toy_data_root, tmp_path):
    with open(osp.join(toy_data_root,
                       'annotations/instances_train.json')) as f:
        coco = json.load(f)
    assert len(coco_dataset(toy_data_root,
                            'annotations/instances_train.json')) > 0

    no_images = dict(coco, images=[], annotations=[])
    path = str(tmp_path / 'no_images.json')
    with open(path, 'w') as f:
        json.dump(no_images, f)
    with pytest.raises(EmptyDatasetError) as info:
        coco_dataset(toy_data_root, path)
    assert 'ToySceneCocoDataset found no samples' in str(info.value)
    assert f'{path} exists but lists no samples' in str(info.value)

    no_boxes = dict(coco, annotations=[])
    path = str(tmp_path / 'no_boxes.json')
    with open(path, 'w') as f:
        json.dump(no_boxes, f)
    with pytest.raises(EmptyDatasetError) as info:
        coco_dataset(toy_data_root, path,
                     filter_cfg=dict(filter_empty_gt=True, min_size=1))
    msg = str(info.value)
    assert f'all {len(coco["images"])} samples' in msg
    assert 'removed by filter_cfg' in msg and 'filter_empty_gt' in msg


# --------------------------------------------------------------------------
# The generic config check (any mmseg / mmdet data set type)
# --------------------------------------------------------------------------
def test_check_data_folders_any_dataset_type(toy_data_root, tmp_path):
    empty = str(tmp_path / 'empty')
    os.makedirs(osp.join(empty, 'images', 'training'))
    ade = dict(
        type='ADE20KDataset',
        data_root=empty,
        data_prefix=dict(img_path='images/training',
                         seg_map_path='annotations/training'))
    with pytest.raises(EmptyDatasetError) as info:
        check_data_folders(ade)
    msg = str(info.value)
    assert msg.startswith('train_dataloader.dataset (ADE20KDataset)')
    assert (f"data_prefix img_path='images/training': folder "
            f"{osp.join(empty, 'images/training')} is empty") in msg
    assert (f"data_prefix seg_map_path='annotations/training': folder "
            f"{osp.join(empty, 'annotations/training')} does not exist") in msg

    # Wrapped, and an mmdet set whose ann_file is missing.
    coco = dict(type='CocoDataset', data_root=toy_data_root,
                ann_file='annotations/instances_nope.json',
                data_prefix=dict(img='img_dir/train/'))
    with pytest.raises(EmptyDatasetError) as info:
        check_data_folders(dict(type='RepeatDataset', times=2, dataset=coco))
    msg = str(info.value)
    assert msg.startswith('train_dataloader.dataset.dataset (CocoDataset)')
    assert "ann_file='annotations/instances_nope.json'" in msg
    assert 'img_dir' not in msg  # that folder is fine

    # The toy configs' own train sets pass; remote paths are not inspected.
    for name in (SEG_STUDENT, DET_DISTILL):
        cfg = Config.fromfile(toy_config(name)).train_dataloader.dataset
        cfg.data_root = toy_data_root
        check_data_folders(cfg)
    check_data_folders(dict(data_root='s3://bucket/x',
                            data_prefix=dict(img_path='images')))


# --------------------------------------------------------------------------
# The label check itself
# --------------------------------------------------------------------------
def seg_sample(values, path=None):
    from mmseg.structures import SegDataSample
    sample = SegDataSample(
        gt_sem_seg=PixelData(data=torch.tensor(values).view(1, 1, -1)))
    if path:
        sample.set_metainfo(dict(seg_map_path=path))
    return sample


def det_sample(labels, path=None):
    from mmdet.structures import DetDataSample
    sample = DetDataSample()
    sample.gt_instances = InstanceData(
        labels=torch.tensor(labels, dtype=torch.long),
        bboxes=torch.zeros(len(labels), 4))
    if path:
        sample.set_metainfo(dict(img_path=path))
    return sample


def test_check_labels_segmentation():
    space = LabelSpace(seg_classes=5, ignore_index=255)
    check_labels([seg_sample([0, 4, 255]), seg_sample([1, 2])], space)
    with pytest.raises(ValueError) as info:
        check_labels([
            seg_sample([0, 1], 'a.png'),
            seg_sample([9, 255, 5, 9], 'b.png'),
            seg_sample([-1, 0])
        ], space)
    msg = str(info.value)
    assert msg.startswith('Segmentation label out of range: value 5 in b.png')
    assert 'b.png: [5, 9]' in msg
    assert 'sample 2 of the batch (no seg_map_path/img_path in metainfo): ' \
        '[-1]' in msg
    assert 'a.png' not in msg
    # Without an ignore index, 255 is out of range too.
    with pytest.raises(ValueError, match='value 255'):
        check_labels([seg_sample([255])],
                     LabelSpace(seg_classes=5, ignore_index=None))


def test_check_labels_detection():
    space = LabelSpace(det_classes=3)
    check_labels([det_sample([0, 2]), det_sample([])], space)
    with pytest.raises(ValueError) as info:
        check_labels([det_sample([0, 3], 'x.png'), det_sample([7])], space)
    msg = str(info.value)
    assert msg.startswith('Detection label out of range: box label 3 in x.png')
    assert 'num_classes=3 (valid labels 0..2)' in msg
    assert 'x.png: [3]' in msg and ': [7]' in msg


def test_student_label_space_of_toy_models():
    from mmstructkd.models.task_models import build_task_model
    seg = build_task_model(dict(cfg_path=f'mmstructkd::toy/{SEG_STUDENT}'),
                           'architecture')
    # The toy configs score every class of the toy data set.
    from mmstructkd.toy_data import CLASSES
    assert student_label_space(seg) == LabelSpace(
        seg_classes=len(CLASSES), ignore_index=255, det_classes=None)
    det = build_task_model(
        dict(cfg_path='mmstructkd::toy/'
             'faster-rcnn_r18-thin16_fpn_1xb8-2k_toyscenes-64x64.py'),
        'architecture')
    space = student_label_space(det)
    assert (space.seg_classes, space.det_classes, space.det_head) == \
        (None, 3, 'roi_head.bbox_head')
    with pytest.raises(ValueError, match='roi_head.bbox_head has '
                       'num_classes=3'):
        check_student_labels(det, [det_sample([3])])
