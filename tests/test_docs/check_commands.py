"""Check the shell commands of the docs without running them.

Usage: python check_commands.py COMMANDS_JSON

``COMMANDS_JSON`` holds ``[{"label": ..., "argv": [...], "configs": [...]}]``
(``configs``: file names of the config blocks of the command's page).
For each command:

* ``make T``: ``T`` is a target of the Makefile;
* ``python SCRIPT ARGS`` (also ``.venv/bin/python``): ``SCRIPT`` exists and
  its own argument parser accepts ``ARGS``: the script is run up to its
  ``parse_args`` call, which parses for real and then stops the script;
* ``bash SCRIPT ARGS``: ``SCRIPT`` exists and is valid bash; the launchers
  (``tools/dist_train.sh`` etc.) hand their trailing options to
  ``train.py``/``test.py``, which are checked as above;
* every argument ending in ``.py`` that is not an option names a repository
  file (or ``mmstructkd::<config>``, or a config block of the same page).

Prints one line per problem and exits 1 if there is any.
"""
import argparse
import json
import os
import os.path as osp
import re
import runpy
import subprocess
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PYTHONS = {'python', 'python3', '.venv/bin/python', 'python3.11'}
# Launcher script -> (python tool it runs, positional arguments it takes
# before the tool's own options, how many of them go to the tool).
LAUNCHERS = {
    'tools/dist_train.sh': ('tools/train.py', 2, 1),
    'tools/dist_test.sh': ('tools/test.py', 3, 2),
}
# Positional arguments of slurm_train.sh: PARTITION JOB_NAME CONFIG WORK_DIR.
SLURM = {'tools/slurm_train.sh': ('tools/train.py', 4, (2, ))}
IGNORED = {'cd', 'export', 'ls', 'cat', 'echo', 'git', 'pip', 'mkdir', 'rm',
           'test', 'source', 'nvidia-smi'}


class _Parsed(BaseException):
    """Raised by the patched parse_args once the arguments parsed."""


def make_targets():
    with open(osp.join(REPO_ROOT, 'Makefile')) as f:
        text = f.read()
    return set(re.findall(r'^([\w.-]+):', text, flags=re.MULTILINE))


def check_parses(script, args):
    """None if ``script``'s parser accepts ``args``, else the error."""
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, argv=None, namespace=None):
        original(self, argv, namespace)
        raise _Parsed

    argparse.ArgumentParser.parse_args = parse_then_stop
    saved_argv = sys.argv
    sys.argv = [script] + list(args)
    stderr = sys.stderr
    sys.stderr = captured = __import__('io').StringIO()
    try:
        runpy.run_path(osp.join(REPO_ROOT, script), run_name='__main__')
    except _Parsed:
        return None
    except SystemExit as e:
        return f'exited {e.code}: {captured.getvalue().strip()[-500:]}'
    except Exception as e:  # noqa: BLE001  (report whatever broke)
        return f'{type(e).__name__}: {e}'
    finally:
        sys.stderr = stderr
        sys.argv = saved_argv
        argparse.ArgumentParser.parse_args = original
    return 'the script finished without parsing its arguments'


def check_config_args(args, configs):
    problems = []
    for arg in args:
        if arg.startswith('-') or '=' in arg or not arg.endswith('.py'):
            continue
        if arg in configs or arg.startswith(('mmseg::', 'mmdet::')):
            continue
        if arg.startswith('mmstructkd::'):
            path = osp.join('configs', arg[len('mmstructkd::'):])
        else:
            path = arg
        if not osp.isfile(osp.join(REPO_ROOT, path)):
            problems.append(f'{arg}: no such file')
    return problems


def check_command(argv, configs, targets):
    problems = []
    head, rest = argv[0], argv[1:]
    if re.match(r'^\w+=', head):  # VAR=value [command]
        return check_command(rest, configs, targets) if rest else []
    if head == 'make':
        problems += [f'make {t}: no such target' for t in rest
                     if not t.startswith('-') and '=' not in t and
                     t not in targets]
    elif head in PYTHONS:
        if rest[:1] == ['-m'] or rest[:1] == ['-c']:
            return check_config_args(rest[2:], configs)
        script, args = rest[0], rest[1:]
        if not osp.isfile(osp.join(REPO_ROOT, script)):
            return [f'{script}: no such script']
        error = check_parses(script, args)
        if error:
            problems.append(f'{script} {" ".join(args)}: {error}')
        problems += check_config_args(args, configs)
    elif head in ('bash', 'sh') or head.endswith('.sh'):
        script, args = (rest[0], rest[1:]) if head in ('bash', 'sh') else \
            (head, rest)
        if not osp.isfile(osp.join(REPO_ROOT, script)):
            return [f'{script}: no such script']
        proc = subprocess.run(['bash', '-n', script], cwd=REPO_ROOT,
                              capture_output=True, text=True)
        if proc.returncode:
            problems.append(f'{script}: {proc.stderr.strip()}')
        if script in LAUNCHERS:
            tool, num_positional, to_tool = LAUNCHERS[script]
            tool_args = args[:to_tool] + args[num_positional:]
        elif script in SLURM:
            tool, num_positional, picks = SLURM[script]
            tool_args = [args[i] for i in picks if i < len(args)] + \
                args[num_positional:]
        else:
            tool = None
        if tool is not None:
            error = check_parses(tool, tool_args)
            if error:
                problems.append(f'{script} {" ".join(args)}: {error}')
        problems += check_config_args(args, configs)
    elif head not in IGNORED:
        problems.append(f'{head}: command not known to the docs checker')
    return problems


def main(path):
    with open(path) as f:
        commands = json.load(f)
    os.chdir(REPO_ROOT)
    sys.path.insert(0, REPO_ROOT)
    targets = make_targets()
    problems = []
    for command in commands:
        for problem in check_command(command['argv'], set(command['configs']),
                                     targets):
            problems.append(f'{command["label"]}: {problem}')
    for problem in problems:
        print(problem)
    print(f'checked {len(commands)} commands')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1]))
