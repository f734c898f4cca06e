"""Finding the case modules, and the sizes a case runs at."""
import glob
import importlib.util
import json
import math
import os.path as osp

QUICK_DIVISOR = 8
QUICK_MINIMUM = 4


def family_of_module(module_name):
    return module_name.replace('_', '-')


def case_modules(cases_dir, only=None):
    """Names of the case modules; with ``only``, the one it names if any."""
    names = sorted(
        osp.splitext(osp.basename(path))[0]
        for path in glob.glob(osp.join(cases_dir, '*.py'))
        if not osp.basename(path).startswith('_'))
    if only is not None:
        named = [n for n in names if family_of_module(n) == only]
        # A module may hold a family not named after it: then ask them all.
        return named or names
    return names


def load_case_module(cases_dir, module_name):
    path = osp.join(cases_dir, module_name + '.py')
    spec = importlib.util.spec_from_file_location(
        f'loss_benchmarks.{module_name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def list_cases(cases_dir, module_name):
    """The module's ``CASES`` as plain data (a value JSON cannot hold
    becomes its ``repr``, as in the results file)."""
    module = load_case_module(cases_dir, module_name)
    return json.loads(json.dumps([dict(case) for case in module.CASES],
                                 default=repr))


def effective_params(case, quick):
    params = dict(case.get('params', {}))
    if not quick:
        return params
    if 'quick_params' in case:
        return dict(case['quick_params'])
    for name, value in params.items():
        if isinstance(value, int) and not isinstance(value, bool) and (
                name in ('H', 'W') or name.startswith('C')):
            params[name] = max(QUICK_MINIMUM, value // QUICK_DIVISOR)
    return params


def size_label(params):
    """'N=1, C=256, 64x128' from the params."""
    parts = [f'{k}={v}' for k, v in params.items() if k not in ('H', 'W')]
    if 'H' in params and 'W' in params:
        parts.append(f'{params["H"]}x{params["W"]}')
    return ', '.join(parts)


def estimate_elems(module, case, params):
    if 'elems' in case:
        return int(case['elems'])
    if hasattr(module, 'estimate_elems'):
        return int(module.estimate_elems(case['build'], params))
    ints = [v for v in params.values()
            if isinstance(v, int) and not isinstance(v, bool)]
    return math.prod(ints) if ints else 0
