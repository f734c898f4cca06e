# Channel-wise distillation of the logits, DeepLabV3-R101 -> DeepLabV3-R18 on
# Cityscapes, with the same loss settings as the PSPNet config.
_base_ = ['./cwd_logits_pspnet-r101-d8_pspnet-r18-d8_4xb2-80k_cityscapes-512x1024.py']

teacher_ckpt = 'https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/deeplabv3_r101-d8_512x1024_80k_cityscapes/deeplabv3_r101-d8_512x1024_80k_cityscapes_20200606_113503-9e428899.pth'  # noqa: E501
model = dict(
    architecture=dict(
        cfg_path='mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py'),  # noqa: E501
    teacher=dict(
        cfg_path='mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py'),  # noqa: E501
    teacher_ckpt=teacher_ckpt)
