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
so nothing is sent until the files are valid. Each file is read by the API's own parser
(:mod:`ecrcache.parsing`: YAML 1.2 core, the same limits); its problems carry ``FILE:LINE:COLUMN``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from ecrcache.errors import HIDDEN_SUFFIX, hidden_key, render_validation_errors
from ecrcache.models.desired_state import DesiredStateDocument
from ecrcache.models.records import SECTIONS as SECTION_OF_KIND
from ecrcache.parsing import LIMITS, BodyInvalidError, BodySyntaxError, BodyTooLargeError, Syntax, parse_bytes
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


def read_document(path: Path) -> Any:
    """Parse one file (JSON for ``.json``, YAML otherwise) with the API's own parser and limits.

    :mod:`ecrcache.parsing` reads YAML with the 1.2 core schema and refuses what the API refuses
    (aliases, duplicate keys, keys that are not strings, tags outside the core schema, values past its
    limits), so a file accepted here is a body the API reads the same way. Problems carry
    ``FILE:LINE:COLUMN`` where the parser knows them. A UTF-8 byte-order mark is allowed.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DocumentError([Problem(str(path), f"cannot read: {exc.strerror or exc}")]) from None
    syntax: Syntax = "json" if path.suffix.lower() == ".json" else "yaml"
    try:
        return parse_bytes(data, syntax)
    except BodyTooLargeError:
        message = f"larger than {LIMITS.max_bytes:,} bytes, the most the API accepts"
        raise DocumentError([Problem(str(path), message)]) from None
    except BodySyntaxError as exc:
        message = f"invalid {syntax.upper()}: {exc.message}" if exc.type.endswith("_invalid") else exc.message
        raise DocumentError([Problem(_where(path, exc.line, exc.column), message)]) from None
    except BodyInvalidError as exc:
        problems = [Problem(_where(path, p.line, p.column), p.message, field_path(p.loc)) for p in exc.problems]
        raise DocumentError(problems) from None


def _where(path: Path, line: int | None, column: int | None) -> str:
    return f"{path}:{line}:{column}" if line is not None else str(path)


# --------------------------------------------------------------------------------------------------
# merging


def _check_file(path: Path, data: Any, problems: list[Problem]) -> dict[str, dict[str, Any]]:
    """The sections of one file, after the checks only a single file can make (keys are strings: the parser says so)."""
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
            if type(value) is not int or value != 1:
                problems.append(Problem(where, "the only document version is 1", "version"))
            continue
        if key not in SECTIONS:
            problems.append(_unknown_section(where, key))
            continue
        if value is None:
            continue
        if not isinstance(value, dict):
            problems.append(Problem(where, f"must be a mapping of names to items; got {_type_name(value)}", key))
            continue
        sections[key] = value
    return sections


def _unknown_section(where: str, key: Any) -> Problem:
    """An unknown top-level key, named unless it may be a mistyped secret (``token:SECRET``)."""
    expected = ", ".join(("version", *SECTIONS))
    if hidden_key(key):
        return Problem(where, f"unknown field (expected {expected}){HIDDEN_SUFFIX}")
    return Problem(where, f"unknown field (expected {expected})", _segment(str(key)))


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
    """``rules["quay"]``; a name that may be a pasted secret is not shown (the section is)."""
    return section if hidden_key(name) else f"{section}[{json.dumps(name)}]"


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
    return [
        Problem(_origin(e.loc, origins, files), e.message, field_path(e.loc) or "document")
        for e in render_validation_errors(exc.errors(include_url=False, include_input=False))
    ]


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
    size = len(json.dumps(body).encode())
    if not problems and size > LIMITS.max_bytes:
        where = ", ".join(str(f) for f in files)
        message = f"together {size:,} bytes as JSON; the API accepts at most {LIMITS.max_bytes:,}"
        problems.append(Problem(where, message))
    if problems:
        raise DocumentError(problems)
    try:
        document = DesiredStateDocument.model_validate(body)
    except ValidationError as exc:
        raise DocumentError(_validation_problems(exc, origins, files)) from None
    return DesiredStateFiles(tuple(files), body, origins, tuple(warnings), document)
