# DIST (Huang et al., NeurIPS 2022) on the segmentation logits,
# DeepLabV3-R101 (teacher, mmseg model zoo, 80.20 mIoU) -> PSPNet-R18 on
# Cityscapes: the DeepLabV3-R18 config's setting (DIST_KD segmentation code,
# CIRKD codebase) with a PSPNet student. Published: 72.55 -> 76.31 mIoU with
# their own 78.07 mIoU teacher and model code.
_base_ = [
    './dist_logits_deeplabv3-r101-d8_deeplabv3-r18-d8_8xb2-40k_cityscapes-512x1024.py'  # noqa: E501
]

student_cfg_path = 'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'  # noqa: E501
model = dict(architecture=dict(cfg_path=student_cfg_path))
