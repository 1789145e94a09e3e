"""Reading a config: YAML files, `KEY VALUE` overrides and dicts merged onto the defaults, with where each
value came from (biapy_cls/configure.py checks and freezes the result).

Order: defaults, then the YAML, then trailing `KEY VALUE` pairs from the command line. Strings that
look like Python literals are parsed as BiaPy does (`(28, 28, 1)` is a tuple, `1e-4` a float).
Every problem found is reported at once, each naming its key.
"""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from yacs.config import CfgNode as CN

from biapy_cls.config import compat
from biapy_cls.config.defaults import VALUE_ALIASES, get_cfg_defaults
from biapy_cls.config.yaml_safety import DuplicateKey, TooLarge, load_config_yaml
from biapy_cls.errors import ConfigError


def flatten(node: dict, prefix: str = "") -> dict[str, Any]:
    """{'A': {'B': 1}} -> {'A.B': 1}."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def all_keys(cfg: CN | None = None) -> list[str]:
    return list(flatten(cfg if cfg is not None else get_cfg_defaults()))


def decode_value(value: Any) -> Any:
    """Parse strings holding Python literals, as yacs and BiaPy do; other values pass through."""
    if isinstance(value, str):
        try:
            return ast.literal_eval(value.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            return value
    return value


def _type_name(value: Any) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a text", tuple: "a list",
            list: "a list"}.get(type(value), type(value).__name__)


# Examples for keys whose default is no help as one (an empty list).
EXAMPLES = {
    "DATA.PATCH_SIZE": "(256, 256, 1)   # (y, x, channels); 3D: (z, y, x, channels)",
    "MODEL.FREEZE_LAYERS_MATCHING": "['^stem', '^blocks\\.0\\.']",
    "LOSS.CLASS_WEIGHTS": "[1.0, 2.5]",
    "TRAIN.METRICS": "['accuracy', 'f1']",
    "TEST.METRICS": "['accuracy', 'f1']",
}


def coerce(key: str, value: Any, default: Any, source: str = "") -> Any:
    """`value` converted to the type of `default`, or a ConfigError that says what was expected."""
    value = decode_value(value)

    def wrong() -> ConfigError:
        example = EXAMPLES.get(key) or {bool: "True", int: "10", float: "0.001", str: "'text'"}.get(
            type(default), str(default))
        where = f" (in {source})" if source else ""
        return ConfigError(
            f"{key}{where} must be {_type_name(default)}, but the value given is {value!r} ({_type_name(value)}). "
            f"Example: {key}: {example}"
        )

    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise wrong()
    if isinstance(default, int):
        if isinstance(value, bool):
            raise wrong()
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise wrong()
    if isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise wrong()
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        if value is None:  # an empty YAML value, e.g. "PATH:"
            return ""
        raise wrong()
    if isinstance(default, (tuple, list)):
        if isinstance(value, (tuple, list)):
            return type(default)(value)
        raise wrong()
    return value


def suggest(key: str, known: Sequence[str]) -> str:
    """' Did you mean X?' for the closest valid key, or ''."""
    same = [k for k in known if k.upper() == key.upper()]  # keys are upper case: train.epochs is TRAIN.EPOCHS
    close = same or difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if not close:  # a right name in the wrong section, e.g. DATA.EPOCHS -> TRAIN.EPOCHS
        leaf = key.rsplit(".", 1)[-1]
        by_leaf = {k.rsplit(".", 1)[-1]: k for k in known}
        leaf_match = difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.75)
        close = [by_leaf[leaf_match[0]]] if leaf_match else []
    return f" Did you mean {close[0]}?" if close else ""


def read_yaml(path: str | Path) -> dict:
    path = Path(path).expanduser()
    if not path.exists():
        raise ConfigError(f"The config file '{path}' does not exist. Check the path given to --config.")
    if path.is_dir():
        raise ConfigError(f"--config points to the folder '{path}'; give the path of a YAML file.")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"Cannot read the config file '{path}': {err}.") from err
    if not text.strip() or all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()):
        raise ConfigError(
            f"The config file '{path}' is empty" + (" (only comments)" if text.strip() else "") + ": it must hold at "
            "least the DATA and TRAIN/TEST sections. Start from a template, e.g. "
            "templates/classification/2d_classification.yaml."
        )
    try:
        data = load_config_yaml(text)
    except DuplicateKey as err:
        raise ConfigError(
            f"The config file '{path}' gives '{err.key}' twice in the same section, at lines {err.first_line} and "
            f"{err.second_line}; YAML would silently keep only the second. Merge the two into one."
        ) from err
    except TooLarge as err:
        raise ConfigError(f"The config file '{path}' is refused: {err}. A config file needs no such nesting.") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(
            f"The config file '{path}' is not valid YAML{where}: {problem}. Check the indentation (spaces, "
            "not tabs) and that every 'KEY: value' has a space after the colon."
        ) from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"The config file '{path}' must hold sections of 'KEY: value' pairs (SYSTEM:, DATA:, TRAIN:, ...), "
            f"but it holds {type(data).__name__}."
        )
    return data


def parse_overrides(opts: Sequence[str]) -> dict[str, Any]:
    """['TRAIN.EPOCHS', '5', ...] -> {'TRAIN.EPOCHS': '5', ...} (values decoded later)."""
    opts = list(opts)
    if len(opts) % 2:
        raise ConfigError(
            f"Command-line overrides come in KEY VALUE pairs, but '{opts[-1]}' has no value. "
            "Example: biapy --config x.yaml ... TRAIN.EPOCHS 5"
        )
    out = {}
    for key, value in zip(opts[::2], opts[1::2]):
        if key.startswith("-"):
            raise ConfigError(f"'{key}' is not a known flag; run 'biapy --help'. Overrides are KEY VALUE pairs.")
        if isinstance(value, str):
            try:
                value = yaml.safe_load(value) if value.strip() else value
            except yaml.YAMLError:
                pass
        out[key] = value
    return out


def _list_of_one(key: str, value: Any, source: str) -> Any:
    """BiaPy 3.7's list form of a key that takes one value here (compat.LISTS_OF_ONE) -> that value."""
    value = decode_value(value)
    is_list = isinstance(value, (list, tuple))
    if key == "TRAIN.OPT_BETAS":  # a pair itself: only a list of pairs is BiaPy's list form
        is_list = is_list and bool(value) and isinstance(value[0], (list, tuple))
    if not is_list:
        return value
    if len(value) != 1:
        raise ConfigError(
            f"{key} in {source} lists {len(value)} values ({list(value)}). BiaPy's list holds "
            f"{compat.LISTS_OF_ONE[key]}: "
            f"give one value, e.g. {key}: {value[0] if value else '...'}"
        )
    return value[0]


def merge(cfg: CN, values: dict[str, Any], source: str, origins: dict[str, str] | None = None) -> list[str]:
    """Merge flat `values` into `cfg`; return notices. All errors are raised together.

    `origins` records where each key's value came from (`source`), for the messages of later checks.
    """
    defaults = flatten(cfg)
    known = list(defaults)
    errors: list[str] = []
    notices: list[str] = []
    for key, value in values.items():
        verdict = compat.lookup(key, set(defaults))
        if verdict.kind == "renamed":
            notices.append(f"{key} (in {source}) is BiaPy's old name of {verdict.detail}; using it as "
                           f"{verdict.detail}.")
            key = verdict.detail
        if key in defaults:
            try:
                if key in compat.LISTS_OF_ONE:
                    value = _list_of_one(key, value, source)
                # Before type conversion: an old value may have another type (BiaPy's True/False switches).
                decoded = decode_value(value)
                if isinstance(decoded, str) and (key, decoded.lower()) in VALUE_ALIASES:  # e.g. CROSS_VAL_FOLD: all
                    value = decoded = VALUE_ALIASES[(key, decoded.lower())]
                renamed = compat.RENAMED_VALUES.get((key, decoded)) if isinstance(decoded, (str, bool)) else None
                if renamed:
                    notices.append(f"{key}: '{decoded}' is BiaPy's old name of '{renamed}'; using '{renamed}'.")
                    value = renamed
                value = coerce(key, value, defaults[key], source)
            except ConfigError as err:
                errors.append(str(err))
                continue
            node = cfg
            *parents, leaf = key.split(".")
            for part in parents:
                node = node[part]
            node[leaf] = value
            if origins is not None:
                origins[key] = source
        elif verdict.kind == "not_used":
            notices.append(f"{key} (in {source}) has no effect in classification: {verdict.detail}. It is ignored.")
        elif verdict.kind == "unsupported":
            if not compat.same_value(decode_value(value), verdict.detail):
                errors.append(
                    f"{key} is a BiaPy setting that biapy-cls does not implement, so it cannot be set to "
                    f"{decode_value(value)!r}. Remove it from {source} or set it to {verdict.detail!r}."
                )
        elif isinstance(value, dict) or any(k.startswith(key + ".") for k in known):
            errors.append(f"{key} (in {source}) is a section, not a key: give its keys, e.g. "
                          f"{next(k for k in known if k.startswith(key + '.'))}.")
        else:
            errors.append(f"Unknown config key {key} (in {source}).{suggest(key, known + list(compat.BIAPY_DEFAULTS))}")
    if errors:
        raise ConfigError("\n".join(errors))
    return notices


KEY_PATTERN = re.compile(r"\b[A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)+\b")


def with_origins(message: str, origins: dict[str, str]) -> str:
    """Add where the values came from to each line of a check's message, e.g. "(set in 'x.yaml')"."""
    lines = []
    for line in message.split("\n"):
        where = []
        for key in dict.fromkeys(KEY_PATTERN.findall(line)):
            if key in origins and f"{key} ({origins[key]})" not in where:
                where.append(f"{key} in {origins[key]}")
        lines.append(f"{line} (Set: {'; '.join(where)}.)" if where else line)
    return "\n".join(lines)
