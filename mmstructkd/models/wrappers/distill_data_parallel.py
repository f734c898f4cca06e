"""DDP for distillation: the algorithm keeps its own training step."""
import inspect
from typing import Dict

import torch
from mmengine.model import MMDistributedDataParallel
from torch.nn.parallel import DistributedDataParallel

from mmstructkd.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class DistillDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that runs ``SingleTeacherDistill``'s own
    ``train_step`` (non-finite guards, the adversarial critic step).

    * The student forward still goes through DDP, so its gradients (and the
      connectors') are all-reduced as usual.
    * The frozen teacher is outside the module tree: never wrapped, never
      all-reduced.
    * The adversarial critic's parameters are excluded from DDP: they get no
      gradient in the student step, which plain DDP would report as unused
      parameters (forcing ``find_unused_parameters=True``, and its cost, on
      the whole model). The critic step all-reduces its gradients itself.

    Use it with ``model_wrapper_cfg=dict(
    type='mmstructkd.DistillDistributedDataParallel')``; ``tools/train.py``
    selects it when launched distributed (for plain task models too on CPU,
    where mmengine's default wrapper would pass CUDA device ids).
    """

    def __init__(self, module, detect_anomalous_params: bool = False,
                 **kwargs) -> None:
        # mmengine's Runner passes CUDA device_ids to every DDP wrapper; DDP
        # refuses them for a CPU module (gloo training).
        if all(p.device.type == 'cpu' for p in module.parameters()):
            kwargs.pop('device_ids', None)
            kwargs.pop('output_device', None)
        critic = getattr(module, 'discriminator', None)
        if critic is not None:
            ignored = [f'discriminator.{name}'
                       for name, _ in critic.named_parameters()]
            ignored += [f'discriminator.{name}'
                        for name, _ in critic.named_buffers()]
            DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
                module, ignored)
        super().__init__(
            module=module,
            detect_anomalous_params=detect_anomalous_params,
            **kwargs)

    def train_step(self, data, optim_wrapper) -> Dict[str, torch.Tensor]:
        if 'run_forward' not in inspect.signature(
                self.module.train_step).parameters:
            # A plain task model (e.g. training the teacher on CPU).
            return super().train_step(data, optim_wrapper)
        return self.module.train_step(
            data, optim_wrapper, run_forward=self._run_forward)
