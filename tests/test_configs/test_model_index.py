"""model-index.yml and the metafiles: parse, name existing configs, and
`mmstructkd::` config paths resolve through mmengine."""
import os.path as osp

import yaml
from mmengine.hub import get_config

import mmstructkd  # noqa: F401  (registers the mmstructkd:: prefix)

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def metafiles():
    with open(osp.join(REPO_ROOT, 'model-index.yml')) as f:
        return yaml.safe_load(f)['Import']


def test_every_model_names_an_existing_config():
    names = set()
    assert len(metafiles()) >= 4
    for metafile in metafiles():
        with open(osp.join(REPO_ROOT, metafile)) as f:
            meta = yaml.safe_load(f)
        collections = {c['Name'] for c in meta['Collections']}
        for model in meta['Models']:
            assert model['In Collection'] in collections
            assert osp.isfile(osp.join(REPO_ROOT, model['Config'])), model
            assert model['Name'] == osp.splitext(
                osp.basename(model['Config']))[0]
            assert model['Name'] not in names
            names.add(model['Name'])


def test_package_config_paths_resolve():
    cfg = get_config('mmstructkd::cwd/cwd_logits_pspnet-r101-d8_pspnet-r18-'
                     'd8_4xb2-80k_cityscapes-512x1024.py')
    assert cfg.model.type == 'SingleTeacherDistill'
    cfg = get_config('mmstructkd::toy/pspnet_r18-d8-thin16_1xb8-2k_'
                     'toyscenes.py')
    assert cfg.model.backbone.depth == 18
