"""Let ``mmstructkd::path/to/config.py`` name this package's configs.

mmengine resolves ``package::`` config paths (in ``_base_`` and in a
distillation model's ``cfg_path``) only for packages in its table of known
OpenMMLab packages; mmrazor is there, :func:`register_config_package` adds
this one. The configs are found in ``mmstructkd/.mim/configs`` (a link to
``configs/`` in a source checkout, a copy in an installed build; see
setup.py).
"""
from mmengine.config import utils as config_utils

PACKAGE = 'mmstructkd'


def register_config_package() -> None:
    config_utils.MODULE2PACKAGE.setdefault(PACKAGE, PACKAGE)


register_config_package()
