"""Peak memory of this process, and out-of-memory errors.

Peak memory is process-wide (the kernel's peak RSS, or CUDA's peak
allocation counter), so a benchmark that compares several conditions runs
each in its own process: freed memory stays in the allocator's pools and
would otherwise hide the next condition's allocations. The pattern is::

    meter = MemoryMeter(device, torch)
    meter.start()            # after the models and inputs exist
    ...                      # the measured steps
    peak = meter.peak_beyond_baseline()   # bytes beyond that point
"""
import os
import sys


def current_rss_bytes() -> int:
    """Resident set size of this process now (Linux)."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM); False if not allowed."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def peak_rss_bytes(peak_was_reset: bool) -> int:
    """Peak RSS since the reset (VmHWM), or since the start (getrusage)."""
    if peak_was_reset:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) * 1024
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak if sys.platform == 'darwin' else peak * 1024


class MemoryMeter:
    """Memory in use when :meth:`start` is called, and the peak beyond it.

    CPU: peak RSS minus the RSS at the start, with the peak counter reset
    through ``/proc/self/clear_refs`` where Linux allows (else the peak since
    the process started, which is why callers measure in a fresh process).
    CUDA: ``max_memory_allocated`` minus ``memory_allocated`` at the start.

    Args:
        device: ``'cpu'``, ``'cuda'`` or ``'cuda:i'``.
        torch: the torch module (passed in so that importing this module
            does not import torch).
    """

    def __init__(self, device: str, torch):
        self.torch = torch
        self.cuda = device.startswith('cuda')
        self.device = device

    def start(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize(self.device)
            self.baseline = self.torch.cuda.memory_allocated(self.device)
            self.torch.cuda.reset_peak_memory_stats(self.device)
            self.method = 'torch.cuda.max_memory_allocated'
        else:
            self.baseline = current_rss_bytes()
            self.peak_was_reset = reset_peak_rss()
            self.method = ('peak RSS (VmHWM after clear_refs)'
                           if self.peak_was_reset else
                           'peak RSS (getrusage)')

    def peak_beyond_baseline(self) -> int:
        if self.cuda:
            self.torch.cuda.synchronize(self.device)
            peak = self.torch.cuda.max_memory_allocated(self.device)
        else:
            peak = peak_rss_bytes(self.peak_was_reset)
        return max(0, peak - self.baseline)


def is_out_of_memory(err: BaseException, torch) -> bool:
    """MemoryError, torch's OutOfMemoryError, or the CPU allocator's
    RuntimeError."""
    oom_types = (MemoryError, getattr(torch, 'OutOfMemoryError', MemoryError))
    if isinstance(err, oom_types):
        return True
    message = str(err)
    return isinstance(err, RuntimeError) and (
        'not enough memory' in message or "can't allocate memory" in message
        or 'out of memory' in message)
