"""Read a Python config text as data, never running it.

mmengine's Runner stores the config of a run in every checkpoint it writes
(``meta['cfg'] = cfg.pretty_text``), and mmengine reads configs with
``Config.fromstring``/``fromfile``, which *execute* the text. A checkpoint is
data from whoever sent it, so its config must not be executed: this module
parses the text with :mod:`ast` (parsing runs nothing) and accepts only what
``pretty_text`` writes, i.e. assignments of literals::

    name = dict(key=value, ...)      # also dict({'non-identifier': value})
    name = [..] / (..) / {..: ..} / 'str' / 1.5 / -3 / True / None

Anything else (a call other than ``dict``, a name, an attribute, an
operator, an import, a comprehension) raises :class:`ConfigNotDataError`
before anything could run. It is :func:`ast.literal_eval` extended with
``dict(...)``.

Example:
    >>> parse_config_data("model = dict(type='EncoderDecoder', x=(1, -2))")
    {'model': {'type': 'EncoderDecoder', 'x': (1, -2)}}
"""
import ast
from typing import Any, Dict

__all__ = ['ConfigNotDataError', 'parse_config_data']


class ConfigNotDataError(ValueError):
    """The config text holds something other than literal data."""


def parse_config_data(text: str) -> Dict[str, Any]:
    """The ``{name: value}`` assigned by ``text``, read as data only.

    Names starting with ``__`` are left out, as mmengine's ``Config`` does.

    Args:
        text: config text in the form of ``Config.pretty_text``.

    Returns:
        dict of plain ``dict``/``list``/``tuple``/``set`` and literals.

    Raises:
        ConfigNotDataError: ``text`` is not valid Python or holds anything
            but assignments of literal data.
    """
    if not isinstance(text, str):
        raise ConfigNotDataError(
            f'the config is a {type(text).__name__}, not text.')
    try:
        tree = ast.parse(text, mode='exec')
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        raise ConfigNotDataError(
            f'the config text does not parse as Python: {e}') from None
    data = {}
    for statement in tree.body:
        if not (isinstance(statement, ast.Assign) and
                len(statement.targets) == 1 and
                isinstance(statement.targets[0], ast.Name)):
            _refuse(statement, 'only "name = <literal>" statements')
        name = statement.targets[0].id
        try:
            value = _literal(statement.value)
        except RecursionError:
            raise ConfigNotDataError(
                'the config text is nested too deeply.') from None
        if not name.startswith('__'):
            data[name] = value
    return data


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = [_literal(item) for item in node.elts]
        kind = {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)]
        return _hashing(node, kind, items)
    if isinstance(node, ast.Dict):
        if any(key is None for key in node.keys):
            _refuse(node, 'no ** unpacking')
        return _hashing(node, dict, [(_literal(k), _literal(v))
                                     for k, v in zip(node.keys, node.values)])
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
            node.func.id == 'dict':
        # pretty_text writes dict(k=v) and, for keys that are not
        # identifiers, dict({'k': v}).
        if len(node.args) > 1 or any(k.arg is None for k in node.keywords):
            _refuse(node, 'dict() with keywords or one mapping only')
        value = {}
        if node.args:
            mapping = _literal(node.args[0])
            if not isinstance(mapping, dict):
                _refuse(node, 'dict() of a mapping only')
            value.update(mapping)
        value.update((k.arg, _literal(k.value)) for k in node.keywords)
        return value
    if isinstance(node, ast.UnaryOp) and \
            isinstance(node.op, (ast.USub, ast.UAdd)) and \
            isinstance(node.operand, ast.Constant) and \
            type(node.operand.value) in (int, float, complex):
        value = node.operand.value
        return -value if isinstance(node.op, ast.USub) else +value
    _refuse(node, 'literals and dict(...) only')


def _hashing(node, kind, items):
    try:
        return kind(items)
    except TypeError as e:  # e.g. a list as a dict key
        raise ConfigNotDataError(
            f'line {getattr(node, "lineno", "?")}: {e}') from None


def _refuse(node: ast.AST, allowed: str):
    line = getattr(node, 'lineno', '?')
    raise ConfigNotDataError(
        f'line {line}: {type(node).__name__} is not data ({allowed}); the '
        f'config text was not executed.')
