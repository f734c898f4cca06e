"""The machine a benchmark ran on, as recorded with its results."""
import os
import platform
from typing import List


def machine_info(device: str) -> dict:
    import torch
    info = dict(
        platform=platform.platform(),
        processor=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        python=platform.python_version(),
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
        device=device)
    if device.startswith('cuda') and torch.cuda.is_available():
        info['gpu'] = torch.cuda.get_device_name(device)
    return info


def load_average() -> List[float]:
    """The 1, 5 and 15-minute load averages (timings on a shared machine
    are only comparable at similar load)."""
    return [round(x, 2) for x in os.getloadavg()]
