"""Random training batches, as a dataloader gives them to a model.

Pictures are uint8 ``(3, H, W)`` tensors; labels and boxes come from a
seeded generator, so the same seed gives the same batch.
"""
from typing import Sequence, Tuple


def seg_batch(batch: int, size: Sequence[int], num_classes: int,
              seed: int) -> dict:
    """Random uint8 pictures and label maps of ``size`` (H, W)."""
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    height, width = size
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(batch):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.randint(
            0, num_classes, (1, height, width), generator=gen))
        sample.set_metainfo(dict(img_shape=(height, width),
                                 ori_shape=(height, width),
                                 pad_shape=(height, width)))
        samples.append(sample)
    return dict(inputs=random_pictures(batch, height, width, gen),
                data_samples=samples)


def det_batch(batch: int, size: Sequence[int], num_classes: int, seed: int,
              with_masks: bool = False, num_boxes: int = 5,
              box_scale: Tuple[float, float] = (0.125, 0.5)) -> dict:
    """Random uint8 pictures of ``size`` (H, W) with ``num_boxes`` random
    boxes each, inside the picture, each side between ``box_scale[0]`` and
    ``box_scale[1]`` of the picture's (box masks too for instance
    segmentation)."""
    import numpy as np
    import torch
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    height, width = size
    gen = torch.Generator().manual_seed(seed)
    extent = torch.tensor([width, height], dtype=torch.float32)
    low, high = box_scale
    samples = []
    for _ in range(batch):
        wh = extent * (low + (high - low) * torch.rand(
            num_boxes, 2, generator=gen))
        corner = (extent - wh) * torch.rand(num_boxes, 2, generator=gen)
        boxes = torch.cat([corner, corner + wh], dim=1)
        instances = InstanceData(
            bboxes=boxes,
            labels=torch.randint(0, num_classes, (num_boxes, ),
                                 generator=gen))
        if with_masks:
            masks = np.zeros((num_boxes, height, width), dtype=np.uint8)
            for i, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
                masks[i, y1:y2, x1:x2] = 1
            instances.masks = BitmapMasks(masks, height, width)
        sample = DetDataSample()
        sample.gt_instances = instances
        sample.set_metainfo(dict(img_shape=(height, width),
                                 ori_shape=(height, width),
                                 scale_factor=(1.0, 1.0)))
        samples.append(sample)
    return dict(inputs=random_pictures(batch, height, width, gen),
                data_samples=samples)


def random_pictures(batch: int, height: int, width: int, gen) -> list:
    """``batch`` random uint8 pictures of (3, height, width)."""
    import torch
    return [torch.randint(0, 256, (3, height, width), dtype=torch.uint8,
                          generator=gen) for _ in range(batch)]
