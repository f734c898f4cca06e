"""Running Python child processes from the repository root.

Every child a benchmark starts (``tools/train.py``, ``tools/test.py``,
``tools/make_toy_data.py``, a benchmark's own worker) goes through
:func:`run_python` (the completed process, output captured, for workers
whose answer is read) or :func:`check_python` (output streamed to a log
file and / or echoed, the benchmark stopped with the output's tail when the
child fails). Both put the repository first on ``PYTHONPATH`` and can cap
the child's torch threads.

A worker answers with one marked JSON line on stdout
(:func:`print_result`), which the parent reads with :func:`parse_result`.
"""
import json
import os
import subprocess
import sys
from typing import Dict, List, Optional, Sequence

from .config_lists import REPO_ROOT

RESULT_MARKER = 'BENCHMARK_RESULT '
# Lines of a failed child's output shown when it has no log file.
FAILURE_TAIL_LINES = 80
# mmengine's log line prefix; the echo keeps what follows it.
MMENGINE_INFO = ' - mmengine - INFO - '


def python_env(threads: Optional[int] = None,
               extra_env: Optional[Dict[str, str]] = None) -> dict:
    """This process's environment with the repository first on
    ``PYTHONPATH``, ``extra_env`` added and, with ``threads``, OpenMP and
    MKL capped at that many threads."""
    env = dict(os.environ, **(extra_env or {}))
    env['PYTHONPATH'] = REPO_ROOT + os.pathsep + env.get('PYTHONPATH', '')
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def run_python(args: Sequence[str],
               timeout: Optional[float] = None,
               threads: Optional[int] = None,
               extra_env: Optional[Dict[str, str]] = None
               ) -> subprocess.CompletedProcess:
    """``python args...`` from the repository root; stdout and stderr
    captured separately (text). Raises ``subprocess.TimeoutExpired`` after
    ``timeout`` seconds."""
    return subprocess.run(
        [sys.executable] + list(args), cwd=REPO_ROOT,
        env=python_env(threads, extra_env), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, timeout=timeout)


def is_progress_line(line: str) -> bool:
    """mmengine's training progress (with ETA) and validation mIoU lines."""
    return MMENGINE_INFO + 'Iter(' in line or (
        'mIoU' in line and 'Iter(val)' in line)


def check_python(args: Sequence[str],
                 echo_prefix: Optional[str] = None,
                 log_path: Optional[str] = None,
                 threads: Optional[int] = None,
                 extra_env: Optional[Dict[str, str]] = None,
                 failure: Optional[str] = None) -> None:
    """Run ``python args...`` from the repository root and stop the
    benchmark (``SystemExit``) if it fails.

    Args:
        args: the script and its arguments.
        echo_prefix: if given, mmengine's progress lines (see
            :func:`is_progress_line`) are printed after this prefix.
        log_path: if given, the whole output (stdout and stderr) goes to
            this file, and a failure names it; otherwise a failure prints
            the output's last lines.
        threads: OpenMP / MKL threads of the child.
        extra_env: environment variables added for the child.
        failure: the message of the ``SystemExit`` (default: the command).
    """
    proc = subprocess.Popen([sys.executable] + list(args), cwd=REPO_ROOT,
                            env=python_env(threads, extra_env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    log = open(log_path, 'w') if log_path else None
    tail: List[str] = []
    try:
        for line in proc.stdout:
            if log is not None:
                log.write(line)
            else:
                tail = (tail + [line])[-FAILURE_TAIL_LINES:]
            if echo_prefix is not None and is_progress_line(line):
                print(echo_prefix + line.split(MMENGINE_INFO)[-1].rstrip(),
                      flush=True)
    finally:
        if log is not None:
            log.close()
    if proc.wait() == 0:
        return
    failure = failure or f'command failed: {" ".join(args)}'
    if log_path:
        raise SystemExit(f'{failure}; see {log_path}')
    sys.stdout.write(''.join(tail))
    raise SystemExit(failure)


# ------------------------------------------------------------- workers ---
def print_result(result, default=None) -> None:
    """A worker's answer: one marked JSON line on stdout (``default`` as in
    :func:`json.dumps`)."""
    print(RESULT_MARKER + json.dumps(result, default=default), flush=True)


def parse_result(proc: subprocess.CompletedProcess):
    """The last marked JSON line a worker printed, or None."""
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER):])
    return None


def failure_reason(proc: subprocess.CompletedProcess) -> str:
    """Why a worker gave no result: its signal or its last stderr line."""
    if proc.returncode < 0:
        reason = f'killed by signal {-proc.returncode}'
        if proc.returncode == -9:
            reason += ' (out of memory?)'
        return reason
    lines = [line for line in proc.stderr.strip().splitlines() if line]
    return lines[-1] if lines else f'exit status {proc.returncode}'
