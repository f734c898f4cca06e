"""parse_config_data reads what Config.pretty_text writes, as data, and
refuses (without running) anything else."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from mmstructkd.utils.config_data import ConfigNotDataError, parse_config_data

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_reads_literals_and_dict_calls():
    text = ("a = dict(type='X', n=-3, f=1e-05, t=(1, 2), l=[None, True])\n"
            "b = dict({'not-an-identifier': 1, 2: (3, )})\n"
            "c = {'k': {1, 2}}\n__hidden = 1\n")
    assert parse_config_data(text) == dict(
        a=dict(type='X', n=-3, f=1e-05, t=(1, 2), l=[None, True]),
        b={'not-an-identifier': 1, 2: (3, )}, c={'k': {1, 2}})


# Every config in the repository: its pretty_text (what a Runner stores in
# meta['cfg']) reads back as the same data as executing it gives.
@pytest.mark.parametrize('config', sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs', 'toy', '*.py'))))
def test_reads_back_the_pretty_text_of_every_toy_config(config):
    cfg = Config.fromfile(config)
    text = cfg.pretty_text
    assert parse_config_data(text) == Config.fromstring(
        text, file_format='.py').to_dict()


@pytest.mark.parametrize('text', [
    "_x = __import__('os').system('touch /tmp/never')",
    'import os', 'from os import path', 'x = os.sep', 'x = y',
    'x = print(1)', 'x = dict(**y)', 'x = {**y}', 'x = [*y]',
    'x = 1 + 2', 'x = 10 ** 10 ** 10', 'x = lambda: 0',
    'x = [i for i in range(3)]', "x = f'{y}'", 'x = dict(a=1)[0]',
    'x, y = 1, 2', 'x = y = 1', 'x: int = 1', 'x += 1', 'del x', 'x',
    'def f():\n    pass', 'x = (yield)', 'x = {[1]: 2}', 'x = dict(1)',
    'x = inf', 'x = -y', 'x = not 1', 'x = dict(a=1, b=print())', '(',
])
def test_refuses_everything_else(text):
    with pytest.raises(ConfigNotDataError):
        parse_config_data(text)


def test_refuses_non_text_and_deep_nesting():
    with pytest.raises(ConfigNotDataError):
        parse_config_data(b'x = 1')
    with pytest.raises(ConfigNotDataError):
        parse_config_data('x = ' + '[' * 100000 + ']' * 100000)
