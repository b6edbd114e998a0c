"""Desired-state files for ``ecrcache apply -f``: load, merge, validate locally, name the file of every problem.

Each file is a (partial) desired-state document::

    version: 1            # required, as in the API's document; 1 is the only version
    rules: {<prefix>: {...}}
    credentials: {<name>: {...}}
    warm_sets: {<name>: {...}}

``-f`` takes files (``.yaml``, ``.yml``, ``.json``) and directories (every such file in it, sorted
by name, not recursive). The files are merged section by section; a name defined in two files is
an error naming both. The merged document is validated with
:class:`ecrcache.models.desired_state.DesiredStateDocument`, the model the API itself uses, and
every problem is reported as ``FILE: rules["docker-hub"].lifecycle.rules[0].countNumber: <message>``
so nothing is sent until the files are valid. YAML and JSON syntax errors carry ``FILE:LINE:COLUMN``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import ValidationError

from ecrcache.models.desired_state import DesiredStateDocument
from ecrcache.models.records import SECTIONS as SECTION_OF_KIND
from ecrcache.yaml_safe import NoAliasLoader
from ecrcache_cli.output import CliError, ExitCode

__all__ = [
    "SECTIONS",
    "TOKEN_WARNING",
    "DesiredStateFiles",
    "DocumentError",
    "Problem",
    "expand_paths",
    "field_path",
    "load",
    "read_document",
]

SECTIONS: Final = tuple(SECTION_OF_KIND.values())
SUFFIXES: Final = (".yaml", ".yml", ".json")
TOKEN_WARNING: Final = "keep tokens out of Git; use `ecrcache credentials set`"  # noqa: S105 - advice, not a token
EMPTY_MESSAGE: Final = "holds no desired-state document (the file is empty, only comments, or null)"
VERSION_MISSING: Final = (
    "required field is missing: a desired-state file starts with `version: 1`, as the API's document"
)
_IDENTIFIER: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Problem:
    """One problem in one place: ``FILE: PATH: MESSAGE`` (``FILE:LINE:COL: MESSAGE`` for syntax)."""

    where: str
    message: str
    path: str = ""

    def __str__(self) -> str:
        return f"{self.where}: {self.path}: {self.message}" if self.path else f"{self.where}: {self.message}"


class DocumentError(CliError):
    """The files are not a valid desired state; nothing was sent (exit 3)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(
            f"{count} {noun} in the desired-state files; nothing was applied",
            ExitCode.INVALID_INPUT,
            [str(p) for p in problems],
        )
        self.problems = tuple(problems)

    def lines(self) -> list[str]:
        # One line per problem, file first: editors and CI annotate ``FILE:LINE:COL:`` / ``FILE:`` lines.
        return [*(str(p) for p in self.problems), f"error: {self.message}"]


@dataclass(frozen=True)
class DesiredStateFiles:
    """The merged, validated document and where each item came from."""

    files: tuple[Path, ...]
    body: dict[str, Any]
    """The merged document as JSON data (tokens included), ready to send."""
    origins: dict[tuple[str, str], Path]
    warnings: tuple[str, ...] = ()
    document: DesiredStateDocument = field(default_factory=lambda: DesiredStateDocument(version=1))

    def names(self, section: str) -> list[str]:
        return sorted(self.body.get(section, {}))

    @property
    def is_empty(self) -> bool:
        """No rules, credentials or warm sets at all (``apply --prune`` would delete everything)."""
        return not any(self.body.get(section) for section in SECTIONS)

    @property
    def rule_prefixes(self) -> list[str]:
        """The rules' prefixes as the API reports them (``docker-hub/`` is ``docker-hub``)."""
        return sorted({p.removesuffix("/") for p in self.body.get("rules", {})})


# --------------------------------------------------------------------------------------------------
# finding and parsing files


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Files as given; a directory contributes its ``*.yaml``/``*.yml``/``*.json`` files, sorted, not recursive."""
    files: list[Path] = []
    problems: list[Problem] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
            if not found:
                problems.append(Problem(str(path), "no *.yaml, *.yml or *.json files in this directory"))
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            problems.append(Problem(str(path), "no such file or directory"))
    if problems:
        raise DocumentError(problems)
    unique: list[Path] = []
    seen: set[Path] = set()
    for file in files:
        key = file.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(file)
    return unique


_MERGE_TAG: Final = "tag:yaml.org,2002:merge"


class _StrictLoader(NoAliasLoader):
    """The API's loader (no aliases), also refusing a key repeated in one mapping.

    PyYAML would keep the last of a repeated key silently; merge keys (``<<``) are not keys.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                repeated = key in seen
            except TypeError:  # an unhashable key: let PyYAML report it
                continue
            if repeated:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_document(path: Path) -> Any:
    """Parse one file (JSON for ``.json``, YAML otherwise); syntax errors carry ``FILE:LINE:COLUMN``.

    A UTF-8 byte-order mark is allowed (editors on Windows write one).
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DocumentError([Problem(str(path), "not UTF-8 text")]) from None
    except OSError as exc:
        raise DocumentError([Problem(str(path), f"cannot read: {exc.strerror or exc}")]) from None
    try:
        if path.suffix.lower() == ".json":
            return _read_json(path, text)
        return _read_yaml(path, text)
    except RecursionError:
        raise DocumentError([Problem(str(path), "nested too deeply")]) from None


def _read_yaml(path: Path, text: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        message = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            message = f"{exc.problem} ({exc.context})"
        raise DocumentError([Problem(where, f"invalid YAML: {message}")]) from None
    except yaml.YAMLError as exc:
        raise DocumentError([Problem(str(path), f"invalid YAML: {exc}")]) from None


def _read_json(path: Path, text: str) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise ValueError(f"duplicate key {key!r}")
            out[key] = value
        return out

    try:
        return json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise DocumentError([Problem(f"{path}:{exc.lineno}:{exc.colno}", f"invalid JSON: {exc.msg}")]) from None
    except ValueError as exc:
        raise DocumentError([Problem(str(path), f"invalid JSON: {exc}")]) from None


# --------------------------------------------------------------------------------------------------
# merging


def _jsonable(value: Any) -> Any:
    """YAML values as JSON data: dates become ISO strings (``expires_at: 2027-06-30`` unquoted)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _check_file(path: Path, data: Any, problems: list[Problem]) -> dict[str, dict[str, Any]]:
    """The sections of one file, after the checks only a single file can make."""
    where = str(path)
    if data is None:  # empty, comment-only or `null`: almost certainly not what was meant (think --prune)
        problems.append(Problem(where, EMPTY_MESSAGE))
        return {}
    if not isinstance(data, dict):
        problems.append(Problem(where, f"must be a mapping with {', '.join(SECTIONS)}; got {_type_name(data)}"))
        return {}
    sections: dict[str, dict[str, Any]] = {}
    if "version" not in data:  # the API refuses a document without it; the schema editors use requires it
        problems.append(Problem(where, VERSION_MISSING, "version"))
    for key, value in data.items():
        if key == "version":
            if value != 1 or isinstance(value, bool):
                problems.append(Problem(where, "the only document version is 1", "version"))
            continue
        if key not in SECTIONS:
            expected = ", ".join(("version", *SECTIONS))
            problems.append(Problem(where, f"unknown field (expected {expected})", _segment(str(key))))
            continue
        if value is None:
            continue
        if not isinstance(value, dict):
            problems.append(Problem(where, f"must be a mapping of names to items; got {_type_name(value)}", key))
            continue
        sections[key] = _section_items(where, key, value, problems)
    return sections


def _section_items(where: str, key: str, value: dict[Any, Any], problems: list[Problem]) -> dict[str, Any]:
    """The items of one section by name; a name YAML did not read as a string (``1:``, ``true:``) is a problem."""
    items: dict[str, Any] = {}
    for name, item in value.items():
        if not isinstance(name, str):
            problems.append(
                Problem(where, f"names must be strings (quote {name!r} in YAML)", f"{key}[{json.dumps(str(name))}]")
            )
            continue
        items[name] = _jsonable(item)
    return items


def _type_name(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _merge(
    parsed: Sequence[tuple[Path, Any]],
) -> tuple[dict[str, Any], dict[tuple[str, str], Path], list[str], list[Problem]]:
    body: dict[str, Any] = {"version": 1}
    origins: dict[tuple[str, str], Path] = {}
    warnings: list[str] = []
    problems: list[Problem] = []
    seen: dict[tuple[str, str], tuple[str, Path]] = {}  # a rule's `x/` and `x` are the same rule
    for path, data in parsed:
        for section, items in _check_file(path, data, problems).items():
            target = body.setdefault(section, {})
            for name, item in items.items():
                key = (section, name.removesuffix("/") if section == "rules" else name)
                if key in seen:
                    first_name, first_path = seen[key]
                    problems.append(
                        Problem(
                            str(path),
                            f"also defined in {first_path}"
                            + (f" (as {json.dumps(first_name)})" if first_name != name else "")
                            + "; each name may appear in one file only",
                            _item_path(section, name),
                        )
                    )
                    continue
                seen[key] = (name, path)
                target[name] = item
                origins[(section, name)] = path
                if section == "credentials" and isinstance(item, dict) and "token" in item:
                    warnings.append(f"{path}: {_item_path(section, name)}.token: {TOKEN_WARNING}")
    return body, origins, warnings, problems


# --------------------------------------------------------------------------------------------------
# validation


def _segment(part: str) -> str:
    return part if _IDENTIFIER.match(part) else f"[{json.dumps(part)}]"


def _item_path(section: str, name: str) -> str:
    return f"{section}[{json.dumps(name)}]"


def field_path(loc: Sequence[int | str]) -> str:
    """``('rules', 'docker-hub', 'lifecycle', 'rules', 0, 'x')`` -> ``rules["docker-hub"].lifecycle.rules[0].x``."""
    parts = [p for p in loc if p != "[key]" and not (isinstance(p, str) and p.startswith("function-"))]
    if len(parts) >= 2 and parts[0] in SECTIONS:
        out = _item_path(str(parts[0]), str(parts[1]))
        rest = parts[2:]
    else:
        out, rest = "", parts
    for part in rest:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            segment = _segment(part)
            out += segment if segment.startswith("[") or not out else f".{segment}"
    return out


def _validation_problems(
    exc: ValidationError, origins: dict[tuple[str, str], Path], files: Sequence[Path]
) -> list[Problem]:
    problems: list[Problem] = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = tuple(err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        elif err["type"] == "missing":
            message = "required field is missing"
        where = _origin(loc, origins, files)
        problems.append(Problem(where, message, field_path(loc) or "document"))
    return problems


def _origin(loc: tuple[int | str, ...], origins: dict[tuple[str, str], Path], files: Sequence[Path]) -> str:
    if len(loc) >= 2 and (str(loc[0]), str(loc[1])) in origins:
        return str(origins[(str(loc[0]), str(loc[1]))])
    if loc:  # a whole section (e.g. the rules-per-Region quota): every file that has items in it
        contributing = sorted({str(p) for (section, _), p in origins.items() if section == loc[0]})
        if contributing:
            return ", ".join(contributing)
    return ", ".join(str(p) for p in files)


def load(paths: Iterable[Path]) -> DesiredStateFiles:
    """Read, merge and validate; raises :class:`DocumentError` listing every problem found."""
    files = expand_paths(paths)
    parsed: list[tuple[Path, Any]] = []
    problems: list[Problem] = []
    for path in files:
        try:
            parsed.append((path, read_document(path)))
        except DocumentError as exc:
            problems.extend(exc.problems)
    body, origins, warnings, merge_problems = _merge(parsed)
    problems.extend(merge_problems)
    if problems:
        raise DocumentError(problems)
    try:
        document = DesiredStateDocument.model_validate(body)
    except ValidationError as exc:
        raise DocumentError(_validation_problems(exc, origins, files)) from None
    return DesiredStateFiles(tuple(files), body, origins, tuple(warnings), document)
