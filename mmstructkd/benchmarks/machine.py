"""The machine a benchmark ran on, as recorded with its results."""
import os
import platform
from typing import List


def use_threads(threads) -> None:
    """Apply a benchmark command line's ``--threads N`` to this process.

    The one place the benchmarks change torch's process-wide thread count:
    only their command-line entry points and worker processes call it, at
    start-up and at the user's explicit request; no library code does.
    """
    if threads:
        import torch
        torch.set_num_threads(threads)


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
