"""Write or check ``requirements/lock.txt``, the dependency set the tests pass with.

``make setup`` installs every package under ``-c requirements/lock.txt`` (one
exact version each) and then runs ``check``, so a fresh machine gets exactly
the set CI tested, or stops saying which package differs. ``make lock``
refreshes the file: it sets up a scratch environment without the lock (the
newest versions the loose requirements admit) and runs ``write`` there.

Usage:
    python tools/lock_requirements.py write [--lock requirements/lock.txt]
    python tools/lock_requirements.py check [--lock requirements/lock.txt]
"""
import argparse
import os.path as osp
import sys
from importlib import metadata
from typing import Dict

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_LOCK = osp.join(REPO_ROOT, 'requirements', 'lock.txt')
# Not locked: the installers themselves, and setuptools, which the Makefile
# pins on its own line (torch's metadata asks for a newer one than mmcv's
# build and mmengine's `pkg::` configs can use, see requirements/build.txt).
UNLOCKED = {'pip', 'setuptools', 'mmstructkd'}
HEADER = """\
# The exact dependency set the test suite passed with (every package of the
# environment but pip, setuptools and this project). `make setup` installs
# under `-c` of this file and then checks the environment against it.
# Refresh with `make lock` (then run `make test`); do not edit by hand.
"""


def normalise(name: str) -> str:
    return name.lower().replace('_', '-').replace('.', '-')


def installed() -> Dict[str, str]:
    """``{normalised name: version}`` of every distribution on the path."""
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata['Name']
        if name and normalise(name) not in UNLOCKED:
            found[normalise(name)] = dist.version
    return found


def read_lock(path: str) -> Dict[str, str]:
    pins = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            name, sep, version = line.partition('==')
            if not sep or not version:
                raise ValueError(
                    f'{path}:{number}: expected NAME==VERSION, got {line!r}; '
                    f'regenerate the file with `make lock`.')
            pins[normalise(name.strip())] = version.strip()
    return pins


def write(path: str) -> None:
    pins = installed()
    with open(path, 'w') as f:
        f.write(HEADER)
        for name in sorted(pins):
            f.write(f'{name}=={pins[name]}\n')
    print(f'wrote {len(pins)} pins to {path}')


def check(path: str) -> int:
    """0 when the environment holds exactly the locked set, else 1."""
    pins, have = read_lock(path), installed()
    problems = []
    for name in sorted(set(pins) | set(have)):
        want, got = pins.get(name), have.get(name)
        if want == got:
            continue
        if got is None:
            problems.append(f'  {name}: locked {want}, not installed')
        elif want is None:
            problems.append(f'  {name}: {got} installed, not in the lock')
        else:
            problems.append(f'  {name}: locked {want}, installed {got}')
    if problems:
        print(f'The environment differs from {path}:\n' + '\n'.join(problems) +
              '\nRemove .venv and run `make setup` again; if the lock itself '
              'is out of date, refresh it with `make lock`.', file=sys.stderr)
        return 1
    print(f'environment matches {osp.relpath(path)} ({len(pins)} packages)')
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('action', choices=['write', 'check'])
    parser.add_argument('--lock', default=DEFAULT_LOCK)
    args = parser.parse_args(argv)
    if args.action == 'write':
        write(args.lock)
        return 0
    return check(args.lock)


if __name__ == '__main__':
    sys.exit(main())
