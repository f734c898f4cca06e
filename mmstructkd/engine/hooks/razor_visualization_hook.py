"""Feature maps of the model drawn during training (mmrazor's hook)."""
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence, Union

import mmcv
import torch
from mmengine.dist import master_only
from mmengine.fileio import get as read_bytes
from mmengine.hooks import Hook
from mmengine.runner import IterBasedTrainLoop
from mmengine.utils import mkdir_or_exist
from torch import Tensor

from mmstructkd.models.recorders.recorder_manager import RecorderManager
from mmstructkd.models.utils.model_wrappers import unwrap_model
from mmstructkd.registry import HOOKS

# Channel reductions: mmengine's draw_featmap's, plus mmrazor's
# 'pixel_wise_max' (the largest activation over channels at each pixel).
CHANNEL_REDUCTIONS = ('pixel_wise_max', 'squeeze_mean', 'select_max', None)
VISUALIZATION_KEYS = ('channel_reduction', 'topk', 'arrangement',
                      'resize_shape', 'alpha')


def standardize_channels(feat: Tensor) -> Tensor:
    """Each channel of ``feat`` (N, C, H, W) to zero mean and unit standard
    deviation over the batch and the pixels (mmrazor's ``use_norm``)."""
    dims = (0, 2, 3)
    mean = feat.mean(dim=dims, keepdim=True)
    std = feat.std(dim=dims, keepdim=True)
    return (feat - mean) / (std + 1e-6)


@HOOKS.register_module()
class RazorVisualizationHook(Hook):
    """Draw recorded feature maps of val samples during training.

    mmrazor's ``RazorVisualizationHook`` with its config keys. Before
    training and after every ``interval``-th epoch (with an iteration-based
    loop: before training and at its end), the model predicts on the val
    samples ``data_idx`` (in ``eval()`` mode, without gradients) while
    ``recorders`` record, and each tensor named in ``mappings`` is drawn
    as a heat map by mmengine's ``Visualizer.draw_featmap`` (over the input
    picture when ``is_overlaid``). The pictures, named
    ``{stage}_data_idx_{idx}_{name}_{i}``, are written as PNG files to
    ``work_dir/<timestamp>/out_dir`` when ``out_dir`` is set, else given to
    the visualizer's backends (``add_image``); ``show`` also displays them.

    Prediction runs the student only, so ``source`` paths name modules of
    the distillation model's student: ``'architecture.neck'``.

    Args:
        recorders: recorder configs (``ModuleOutputs``, ``ModuleInputs``),
            sources relative to the distillation model.
        mappings: picture name -> ``dict(recorder=..., record_idx=0,
            data_idx=None)``; a tuple record (FPN levels) gives one picture
            per element.
        enabled: draw at all (default False, as in mmrazor).
        data_idx: index or indices of the val samples to draw on.
        interval: draw after every ``interval`` epochs.
        show: display each picture (needs a display).
        wait_time: seconds each displayed picture stays.
        out_dir: directory under ``work_dir/<timestamp>`` for the pictures.
        file_client_args: backend arguments to read the input picture
            (mmengine's ``backend_args``), e.g. ``dict(backend='disk')``.
        is_overlaid: draw the heat map over the input picture.
        visualization_cfg: ``channel_reduction`` (``'pixel_wise_max'``,
            ``'squeeze_mean'``, ``'select_max'`` or None: the ``topk``
            channels in an ``arrangement`` grid), ``topk``, ``arrangement``,
            ``resize_shape``, ``alpha``.
        use_norm: standardise each channel before drawing.
    """

    def __init__(self,
                 recorders: Dict[str, dict],
                 mappings: Dict[str, dict],
                 enabled: bool = False,
                 data_idx: Union[int, Sequence[int]] = 0,
                 interval: int = 1,
                 show: bool = False,
                 wait_time: float = 0.1,
                 out_dir: Optional[str] = None,
                 file_client_args: Optional[dict] = None,
                 is_overlaid: bool = True,
                 visualization_cfg: Optional[dict] = None,
                 use_norm: bool = False) -> None:
        cfg = dict(channel_reduction='pixel_wise_max', topk=20,
                   arrangement=(4, 5), resize_shape=None, alpha=0.5)
        unknown = set(visualization_cfg or {}) - set(VISUALIZATION_KEYS)
        if unknown:
            raise KeyError(f'RazorVisualizationHook: visualization_cfg keys '
                           f'{sorted(unknown)} are unknown; valid: '
                           f'{VISUALIZATION_KEYS}.')
        cfg.update(visualization_cfg or {})
        if cfg['channel_reduction'] not in CHANNEL_REDUCTIONS:
            raise ValueError(f'RazorVisualizationHook: channel_reduction '
                             f'must be one of {CHANNEL_REDUCTIONS}, got '
                             f'{cfg["channel_reduction"]!r}.')
        for name, mapping in mappings.items():
            if mapping.get('recorder') not in recorders:
                raise KeyError(f'RazorVisualizationHook: mappings[{name!r}] '
                               f'names recorder {mapping.get("recorder")!r}'
                               f'; recorders are {sorted(recorders)}.')
        self.recorders = RecorderManager(recorders, owner='visualization')
        self.mappings = mappings
        self.enabled = enabled
        self.data_idx: List[int] = [data_idx] if isinstance(
            data_idx, int) else list(data_idx)
        self.interval = interval
        self.show = show
        self.wait_time = wait_time
        self.out_dir = out_dir
        self.backend_args = file_client_args
        self.is_overlaid = is_overlaid
        self.visualization_cfg = cfg
        self.use_norm = use_norm
        self._step = 0

    def before_run(self, runner) -> None:
        model = unwrap_model(runner.model)
        teacher_sources = [s for s in self.recorders.sources
                           if s.split('.')[0] == 'teacher']
        if teacher_sources:
            raise ValueError(
                f'RazorVisualizationHook: recorders on {teacher_sources}: '
                f'the teacher does not run when the model predicts (and is '
                f'not a submodule here); record student modules, '
                f"'architecture.<module>'.")
        self.recorders.initialize(model)

    @master_only
    def before_train(self, runner) -> None:
        if self.enabled:
            self.visualize(runner, 'before_run')

    @master_only
    def after_train_epoch(self, runner) -> None:
        by_iter = isinstance(runner.train_loop, IterBasedTrainLoop)
        if not self.enabled or not (
                by_iter or self.every_n_epochs(runner, self.interval)):
            return
        stage = f'iter_{runner.iter}' if by_iter \
            else f'epoch_{runner.epoch + 1}'
        self.visualize(runner, stage)

    def visualize(self, runner, stage: str) -> None:
        """Predict on each val sample of ``data_idx`` and draw what the
        ``mappings`` select of the recordings."""
        if runner.val_loop is None:
            raise RuntimeError('RazorVisualizationHook draws on val samples: '
                               'the config needs a val_dataloader.')
        out_dir = None
        if self.out_dir is not None:
            out_dir = osp.join(runner.work_dir, runner.timestamp,
                               self.out_dir)
            mkdir_or_exist(out_dir)
        elif not self.show and not runner.visualizer._vis_backends:
            warnings.warn('RazorVisualizationHook: no out_dir, no show and '
                          'a visualizer without vis_backends: the feature '
                          'maps drawn go nowhere.')
        dataset = runner.val_loop.dataloader.dataset
        model = runner.model
        was_training = model.training
        model.eval()
        try:
            for idx in self.data_idx:
                sample = dataset[idx]
                batch = dict(inputs=[sample['inputs']],
                             data_samples=[sample['data_samples']])
                with torch.no_grad(), self.recorders:
                    model.test_step(batch)
                image = self._input_picture(sample['data_samples'])
                for name, feats in self._recorded().items():
                    for i, feat in enumerate(feats):
                        self._draw(runner, f'{stage}_data_idx_{idx}_{name}'
                                   f'_{i}', feat, image, out_dir)
        finally:
            model.train(was_training)

    def _input_picture(self, data_sample):
        if not self.is_overlaid:
            return None
        return mmcv.imfrombytes(
            read_bytes(data_sample.img_path, backend_args=self.backend_args),
            channel_order='rgb')

    def _recorded(self) -> Dict[str, tuple]:
        recorded = {}
        for name, mapping in self.mappings.items():
            recorder = mapping['recorder']
            try:
                feats = self.recorders.get_record_data(
                    recorder, mapping.get('record_idx', 0),
                    mapping.get('data_idx'))
            except RuntimeError as e:
                raise RuntimeError(
                    f'RazorVisualizationHook: {e} Only the student runs '
                    f'when the model predicts: record modules it runs '
                    f"('architecture.<module>').") from None
            recorded[name] = (feats, ) if isinstance(feats, Tensor) \
                else tuple(feats)
        return recorded

    def _draw(self, runner, name: str, feat: Tensor, image,
              out_dir: Optional[str]) -> None:
        if self.use_norm:
            feat = standardize_channels(feat)
        cfg = dict(self.visualization_cfg)
        featmap = feat[0]
        if cfg['channel_reduction'] == 'pixel_wise_max':
            featmap = featmap.max(dim=0, keepdim=True)[0]
            cfg.update(channel_reduction=None, topk=0)
        drawn = runner.visualizer.draw_featmap(featmap.float(), image, **cfg)
        if out_dir is not None:
            mmcv.imwrite(mmcv.rgb2bgr(drawn), osp.join(out_dir, f'{name}.png'))
        else:
            runner.visualizer.add_image(name, drawn, step=self._step)
        if self.show:
            runner.visualizer.show(drawn, win_name=name,
                                   wait_time=self.wait_time)
        self._step += 1
