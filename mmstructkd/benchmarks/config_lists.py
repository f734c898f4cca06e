"""Where the benchmarks find the repository, and the configs they run.

The benchmarks need a source checkout: ``configs/`` and ``tools/`` next to
this package.
"""
import os.path as osp

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS_DIR = osp.join(REPO_ROOT, 'configs')
TOY_DIR = osp.join(CONFIGS_DIR, 'toy')
RESULTS_DIR = osp.join(REPO_ROOT, 'benchmarks', 'results')
TOY_DATA_ROOT = osp.join(REPO_ROOT, 'data', 'toy_scenes')
# The detection proxy's set (the detection layout, tools/make_toy_data.py
# --object-scale 1.5 --min-depth 0.55).
TOY_DET_DATA_ROOT = osp.join(REPO_ROOT, 'data', 'toy_scenes_det')
# Shared by `make demo`, tools/benchmark_accuracy.py and the toy configs'
# teacher_ckpt.
TOY_TEACHER_CKPT = osp.join(REPO_ROOT, 'work_dirs', 'toy', 'teacher.pth')

# The teacher -> student part of the toy distillation configs' names.
SEG_PAIR = 'pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py'
RETINA_PAIR = ('retinanet-r34-thin32_retinanet-r18-thin16_1xb8-2k_'
               'toyscenes-64x64.py')
FRCNN_PAIR = ('faster-rcnn-r34-thin32_faster-rcnn-r18-thin16_1xb8-2k_'
              'toyscenes-64x64.py')
GFL_PAIR = 'gfl-r34-thin32_gfl-r18-thin16_1xb8-2k_toyscenes-det-96x96.py'


def toy_config(name: str) -> str:
    """The path of ``configs/toy/<name>``."""
    return osp.join(TOY_DIR, name)


TOY_SEG_TEACHER = toy_config('pspnet_r34-d8-thin32_1xb8-2k_toyscenes.py')
TOY_SEG_STUDENT = toy_config('pspnet_r18-d8-thin16_1xb8-2k_toyscenes.py')
TOY_RETINA_TEACHER = toy_config(
    'retinanet_r34-thin32_fpn_1xb8-2k_toyscenes-64x64.py')
TOY_RETINA_STUDENT = toy_config(
    'retinanet_r18-thin16_fpn_1xb8-2k_toyscenes-64x64.py')
TOY_FRCNN_TEACHER = toy_config(
    'faster-rcnn_r34-thin32_fpn_1xb8-2k_toyscenes-64x64.py')
TOY_FRCNN_STUDENT = toy_config(
    'faster-rcnn_r18-thin16_fpn_1xb8-2k_toyscenes-64x64.py')
# The detection proxy's pair (96x96 scenes of the detection layout).
TOY_GFL_TEACHER = toy_config(
    'gfl_r34-thin32_fpn_1xb8-2k_toyscenes-det-96x96.py')
TOY_GFL_STUDENT = toy_config(
    'gfl_r18-thin16_fpn_1xb8-2k_toyscenes-det-96x96.py')
# The second teacher of the toy multi-teacher config (another architecture).
TOY_DEEPLAB_TEACHER = toy_config('deeplabv3_r34-d8-thin32_1xb8-2k_toyscenes.py')
MULTI_TEACHER_CONFIG = toy_config(
    'cwd_logits_pspnet-r34-thin32-and-deeplabv3-r34-thin32_'
    'pspnet-r18-thin16_1xb8-2k_toyscenes.py')

# The distillation configs whose per-step cost tools/benchmark_overhead.py
# measures.
OVERHEAD_TOY_CONFIGS = [
    toy_config('cwd_logits_' + SEG_PAIR),
    toy_config('dist_logits_' + SEG_PAIR),
    toy_config('skd_pi_' + SEG_PAIR),
    toy_config('skd_pi-pa-fullres_' + SEG_PAIR),
    toy_config('skd_pi-pa-ho_' + SEG_PAIR),
    toy_config('bcd_' + SEG_PAIR),
    MULTI_TEACHER_CONFIG,
    toy_config('cwd_fpn_' + RETINA_PAIR),
    toy_config('pkd_fpn_' + RETINA_PAIR),
    toy_config('dist_cls_' + RETINA_PAIR),
    toy_config('mgd_fpn_' + RETINA_PAIR),
    toy_config('skd_pa-fpn_' + RETINA_PAIR),
    toy_config('bcd_' + RETINA_PAIR),
    toy_config('crosskd_' + RETINA_PAIR),
    toy_config('crosskd_' + GFL_PAIR),
    toy_config('ssim_fpn_' + FRCNN_PAIR),
    toy_config('pkd_fpn_' + FRCNN_PAIR),
    toy_config('fbkd_fpn_' + FRCNN_PAIR),
    toy_config('bcd_mask-rcnn-r34-thin32_mask-rcnn-r18-thin16_1xb8-2k_'
               'toyscenes-64x64.py'),
]
OVERHEAD_MODEL_ZOO_CONFIGS = [
    osp.join(CONFIGS_DIR, path) for path in (
        'cwd/cwd_logits_pspnet-r101-d8_pspnet-r18-d8_4xb2-80k_'
        'cityscapes-512x1024.py',
        'dist/dist_logits_deeplabv3-r101-d8_pspnet-r18-d8_8xb2-40k_'
        'cityscapes-512x1024.py',
        'skd/skd_pi_pspnet-r101-d8_pspnet-r18-d8_4xb2-40k_'
        'cityscapes-512x512.py',
        'skd/skd_pi-pa-fullres_pspnet-r101-d8_pspnet-r18-d8_4xb2-40k_'
        'cityscapes-512x512.py',
        'skd/skd_pi-pa-ho_pspnet-r101-d8_pspnet-r18-d8_4xb2-40k_'
        'cityscapes-512x512.py',
        'bcd/bcd_deeplabv3-r101-d8_deeplabv3-r18-d8_4xb2-80k_'
        'cityscapes-512x1024.py',
        'ssim/ssim_fpn_faster-rcnn-r101_faster-rcnn-r50_8xb2-1x_coco.py',
        'pkd/pkd_fpn_faster-rcnn-r101_faster-rcnn-r50_8xb2-2x_coco.py',
        'fbkd/fbkd_fpn_faster-rcnn-r101_faster-rcnn-r50_8xb2-1x_coco.py',
        'bcd/bcd_faster-rcnn-r101_faster-rcnn-r50_8xb2-1x_coco.py',
        'crosskd/crosskd_gfl-r101_gfl-r50_8xb2-1x_coco.py')
]
OVERHEAD_SETS = {
    'toy': OVERHEAD_TOY_CONFIGS,
    'model-zoo': OVERHEAD_MODEL_ZOO_CONFIGS,
    'all': OVERHEAD_TOY_CONFIGS + OVERHEAD_MODEL_ZOO_CONFIGS
}
# tools/benchmark_teacher_forward.py's default: CWD on the FPN of RetinaNet.
TEACHER_FORWARD_CONFIG = osp.join('configs', 'toy', 'cwd_fpn_' + RETINA_PAIR)
