"""model-index.yml and the metafiles in OpenMMLab's format, as ``mim``
reads them from an installed package.

``mim search`` loads ``<installed package>/.mim/model-index.yml`` (the
distribution found by pkg_resources/importlib.metadata), iterates every
model's ``Results`` (a missing list crashes it), and reads ``Config`` and
``Weights``; ``mim train/test`` run ``.mim/tools/{train,test}.py``. The
Student/Teacher entries follow mmrazor's: the OpenMMLab model-zoo model a
config starts from, with that model's published metrics and weights, which
are checked here against mmseg's and mmdet's own metafiles.
(tests/test_configs/test_model_index.py checks names and config files.)
"""
import glob
import importlib
import importlib.metadata
import numbers
import os.path as osp

import pytest
import yaml
from mmengine.config import Config
from mmengine.utils import get_installed_path

import mmstructkd

from conftest import REPO_ROOT

MODEL_FIELDS = {'Name', 'In Collection', 'Metadata', 'Results', 'Config',
                'Weights', 'Paper', 'Code', 'README'}
ROLES = {'Student': 'architecture', 'Teacher': 'teacher'}


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def metafiles(root=REPO_ROOT):
    """(path, content) of every metafile that ``root/model-index.yml``
    imports; paths are relative to ``root``, as mim resolves them."""
    index = load_yaml(osp.join(root, 'model-index.yml'))
    return [(path, load_yaml(osp.join(root, path)))
            for path in index['Import']]


def models():
    return [(model, meta) for _, meta in metafiles()
            for model in meta['Models']]


def model_id(model_and_meta):
    return model_and_meta[0]['Name']


def is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def test_models_have_openmmlab_fields():
    assert len(models()) >= 10
    for path, meta in metafiles():
        for collection in meta['Collections']:
            assert collection['Name'], path
            assert collection['Metadata']['Training Data'], collection
            assert collection['Paper']['Title'], collection
            # mim resolves README and other files from the package root.
            if 'README' in collection:
                assert osp.isfile(osp.join(REPO_ROOT, collection['README']))
    for model, meta in models():
        name = model['Name']
        assert set(model) <= MODEL_FIELDS, (name, set(model) - MODEL_FIELDS)
        collection = {c['Name']: c for c in meta['Collections']}[
            model['In Collection']]
        datasets = collection['Metadata']['Training Data']
        assert model['Metadata']['Training Data'] in datasets, name
        # mim iterates Results: a list of Task/Dataset/Metrics, even when no
        # number is published yet (empty Metrics).
        assert isinstance(model['Results'], list) and model['Results'], name
        for result in model['Results']:
            assert set(result) == {'Task', 'Dataset', 'Metrics'}, name
            assert isinstance(result['Task'], str) and result['Task'], name
            assert result['Dataset'] == model['Metadata']['Training Data']
            assert isinstance(result['Metrics'], dict), name
            assert all(is_number(v) for v in result['Metrics'].values())
        for role in ROLES:
            entry = model['Metadata'][role]
            assert entry['Config'].split('::')[0] in ('mmseg', 'mmdet'), name
            assert all(is_number(v)
                       for v in entry.get('Metrics', {}).values()), name
            if 'Weights' in entry:
                assert entry['Weights'].startswith('https://'), name
        # A distillation needs its teacher's checkpoint.
        assert 'Weights' in model['Metadata']['Teacher'], name
        if 'Weights' in model:
            assert model['Weights'].startswith('https://'), name


@pytest.mark.parametrize('entry', models(), ids=model_id)
def test_teacher_and_student_are_those_of_the_config(entry):
    model, _ = entry
    cfg = Config.fromfile(osp.join(REPO_ROOT, model['Config']))
    for role, key in ROLES.items():
        assert cfg.model[key].cfg_path == \
            model['Metadata'][role]['Config'], role
    assert cfg.model.teacher_ckpt == model['Metadata']['Teacher']['Weights']


def openmmlab_model(config):
    """The model of mmseg's/mmdet's own metafiles whose config is
    ``config`` (``'mmseg::pspnet/....py'``), or None."""
    package, rel = config.split('::')
    root = osp.join(osp.dirname(importlib.import_module(package).__file__),
                    '.mim')
    for path in glob.glob(
            osp.join(root, 'configs', osp.dirname(rel), 'metafile.y*ml')):
        for model in load_yaml(path)['Models']:
            if model.get('Config') == f'configs/{rel}':
                return model
    return None


def published_metrics(model):
    """Every metric of an OpenMMLab metafile model (Results may be one
    result or a list), by name."""
    results = model['Results']
    if isinstance(results, dict):
        results = [results]
    return {k: v for result in results for k, v in result['Metrics'].items()}


def test_published_numbers_are_those_of_the_openmmlab_model_zoo():
    """A Student/Teacher entry with Weights names an OpenMMLab model-zoo
    checkpoint: URL and metrics must be exactly those of mmseg's/mmdet's
    metafile for that config. (An entry without Weights, like SKD's student,
    quotes the paper's own baseline instead.)"""
    checked = 0
    for model, _ in models():
        for role in ROLES:
            entry = model['Metadata'][role]
            if 'Weights' not in entry:
                continue
            upstream = openmmlab_model(entry['Config'])
            assert upstream is not None, (model['Name'], role, entry)
            assert entry['Weights'] == upstream['Weights'], (model['Name'],
                                                             role)
            published = published_metrics(upstream)
            assert entry.get('Metrics'), (model['Name'], role)
            for metric, value in entry['Metrics'].items():
                assert published.get(metric) == pytest.approx(value), (
                    model['Name'], role, metric, published)
            checked += 1
    assert checked >= len(models())  # at least every teacher


def test_every_model_zoo_config_is_indexed():
    indexed = {model['Config'] for model, _ in models()}
    on_disk = {
        osp.relpath(path, REPO_ROOT)
        for path in glob.glob(osp.join(REPO_ROOT, 'configs', '*', '*.py'))
        if not path.startswith(osp.join(REPO_ROOT, 'configs', 'toy'))
    }
    assert on_disk == indexed


def test_installed_distribution_is_what_mim_reads():
    """This environment's mmstructkd, found as mim finds it: an installed
    distribution whose package holds .mim/{model-index.yml,configs,tools}
    with every file the index names."""
    dist = importlib.metadata.distribution('mmstructkd')
    assert dist.version == mmstructkd.__version__
    package_dir = get_installed_path('mmstructkd')
    assert osp.samefile(package_dir, osp.dirname(mmstructkd.__file__))
    mim_dir = osp.join(package_dir, '.mim')
    for tool in ('train.py', 'test.py', 'dist_train.sh',
                 'model_converters/export_student.py'):
        assert osp.isfile(osp.join(mim_dir, 'tools', tool)), tool
    # The same index as the checkout's (an editable install links to it).
    assert load_yaml(osp.join(mim_dir, 'model-index.yml')) == load_yaml(
        osp.join(REPO_ROOT, 'model-index.yml'))
    found = metafiles(mim_dir)
    assert found
    for _, meta in found:
        for model in meta['Models']:
            assert osp.isfile(osp.join(mim_dir, model['Config'])), model
