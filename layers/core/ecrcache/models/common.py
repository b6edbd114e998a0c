"""Shared annotated types for the desired-state models.

Every type here validates with a message that names the rule broken (never the whole input when the
input could be a secret) and carries a hand-written JSON schema, because these types appear in the
published OpenAPI document. The regexes are ECMAScript-compatible so the schema ``pattern`` is the
same rule the server applies.

Nothing here does I/O, reads a clock or the environment.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Final, NoReturn

from pydantic import AfterValidator, Field, TypeAdapter, ValidationError, WithJsonSchema
from pydantic_core import InitErrorDetails, PydanticCustomError

# --------------------------------------------------------------------------------------------------
# Cross-field errors with a precise location
# --------------------------------------------------------------------------------------------------

Loc = tuple[str | int, ...]


def raise_field_errors(title: str, errors: Sequence[tuple[Loc, str, object]]) -> NoReturn:
    """Raise a pydantic ``ValidationError`` whose errors sit at the given ``loc`` paths.

    Used by model validators that check several fields together: pydantic keeps the ``loc`` of a
    ``ValidationError`` raised inside a validator and prefixes it with the enclosing location, so a
    rule's error surfaces as ``rules.docker-hub.credential`` rather than at the model root.
    ``input`` must never be a secret value.
    """
    details = [
        InitErrorDetails(
            type=PydanticCustomError("value_error", "{message}", {"message": message}),
            loc=loc,
            input=value,
        )
        for loc, message, value in errors
    ]
    raise ValidationError.from_exception_data(title, details)


# --------------------------------------------------------------------------------------------------
# ECR pull-through-cache repository prefix
# --------------------------------------------------------------------------------------------------

ROOT_PREFIX: Final = "ROOT"
ECR_PREFIX_MIN_LENGTH: Final = 2
ECR_PREFIX_MAX_LENGTH: Final = 30

# One repository path component as ECR writes it: ``[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*``.
PATH_COMPONENT: Final = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_ECR_PREFIX_RE: Final = re.compile(rf"^{PATH_COMPONENT}(?:/{PATH_COMPONENT})*$")
ECR_PREFIX_SCHEMA_PATTERN: Final = rf"^(?:{PATH_COMPONENT}(?:/{PATH_COMPONENT})*/?|ROOT)$"


def normalise_ecr_prefix(value: str) -> str:
    """Validate an ECR repository prefix and drop the trailing ``/`` ECR implies anyway.

    The rule is botocore's ``PullThroughCacheRuleRepositoryPrefix``: 2-30 characters, lowercase
    ``/``-separated path components, or the literal ``ROOT``. The length is checked after the
    trailing ``/`` is removed, because the normalised form is what is sent to ECR.
    """
    if value == ROOT_PREFIX:
        return value
    if value == f"{ROOT_PREFIX}/":
        raise ValueError("ROOT takes no trailing '/'")
    prefix = value.removesuffix("/")
    if not ECR_PREFIX_MIN_LENGTH <= len(prefix) <= ECR_PREFIX_MAX_LENGTH:
        raise ValueError(
            f"must be {ECR_PREFIX_MIN_LENGTH}-{ECR_PREFIX_MAX_LENGTH} characters without the trailing '/' "
            f"(ECR PullThroughCacheRuleRepositoryPrefix), got {len(prefix)}"
        )
    if _ECR_PREFIX_RE.match(prefix):
        return prefix
    if prefix != prefix.lower():
        raise ValueError("must be lowercase (ECR repository names are lowercase; only the literal ROOT is uppercase)")
    if prefix.startswith("/"):
        raise ValueError("must not start with '/'")
    if "//" in prefix or prefix.endswith("/"):
        raise ValueError("must not contain an empty path component ('//')")
    raise ValueError(
        "must be path components of lowercase letters and digits, separated inside a component by "
        "'.', '_', '__' or '-' and joined by '/', or the literal ROOT"
    )


EcrPrefix = Annotated[
    str,
    AfterValidator(normalise_ecr_prefix),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": ECR_PREFIX_MIN_LENGTH,
            "maxLength": ECR_PREFIX_MAX_LENGTH + 1,
            "pattern": ECR_PREFIX_SCHEMA_PATTERN,
            "description": (
                "ECR repository prefix of a pull-through cache rule: 2-30 lowercase characters in "
                "'/'-separated path components, or ROOT. A trailing '/' is implied and removed."
            ),
            "examples": ["docker-hub", "ghcr", "team-a/quay", "ROOT"],
        }
    ),
]
"""An ECR pull-through-cache repository prefix (``ecrRepositoryPrefix`` / ``upstreamRepositoryPrefix``)."""

_ECR_PREFIX_ADAPTER: Final[TypeAdapter[str]] = TypeAdapter(EcrPrefix)


def parse_ecr_prefix(value: str) -> str:
    """Validate and normalise a prefix outside a model; raises ``pydantic.ValidationError``."""
    return _ECR_PREFIX_ADAPTER.validate_python(value)


# --------------------------------------------------------------------------------------------------
# Names of our own resources (credentials, warm sets)
# --------------------------------------------------------------------------------------------------

RESOURCE_NAME_MAX_LENGTH: Final = 48
RESOURCE_NAME_PATTERN: Final = r"^[a-z0-9](?:[a-z0-9._-]{0,46}[a-z0-9])?$"
_RESOURCE_NAME_RE: Final = re.compile(RESOURCE_NAME_PATTERN)


def check_resource_name(value: str) -> str:
    """Names of credentials and warm sets.

    A credential name becomes the Secrets Manager secret ``ecr-pullthroughcache/<name>`` (secret
    names allow ``[A-Za-z0-9/_+=.@-]``) and a DynamoDB key; a warm-set name becomes part of
    EventBridge schedule names (``[A-Za-z0-9._-]``, at most 64 characters including our own prefix).
    The common safe subset is lowercase letters, digits, ``.``, ``_`` and ``-``, starting and ending
    with a letter or digit, at most 48 characters.
    """
    if not 1 <= len(value) <= RESOURCE_NAME_MAX_LENGTH:
        raise ValueError(f"must be 1-{RESOURCE_NAME_MAX_LENGTH} characters, got {len(value)}")
    if not _RESOURCE_NAME_RE.match(value):
        raise ValueError(
            "must be lowercase letters, digits, '.', '_' or '-', starting and ending with a letter or digit"
        )
    return value


ResourceName = Annotated[
    str,
    AfterValidator(check_resource_name),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": RESOURCE_NAME_MAX_LENGTH,
            "pattern": RESOURCE_NAME_PATTERN,
            "examples": ["docker-hub", "ghcr-ci", "base-images"],
        }
    ),
]
"""Name of a credential or warm set: ``^[a-z0-9](?:[a-z0-9._-]{0,46}[a-z0-9])?$``."""

_RESOURCE_NAME_ADAPTER: Final[TypeAdapter[str]] = TypeAdapter(ResourceName)


def parse_resource_name(value: str) -> str:
    """Validate a resource name outside a model; raises ``pydantic.ValidationError``."""
    return _RESOURCE_NAME_ADAPTER.validate_python(value)


# --------------------------------------------------------------------------------------------------
# AWS identifiers
# --------------------------------------------------------------------------------------------------

AWS_REGION_PATTERN: Final = r"^[a-z]{2,4}(?:-[a-z]+)+-[0-9]{1,2}$"
_AWS_REGION_RE: Final = re.compile(AWS_REGION_PATTERN)


# Regions with an ECR endpoint, per partition, from botocore's endpoint data (botocore 1.44.8).
# tests/contract/test_regions.py fails when botocore knows another list: update it there.
# A known list rather than a runtime lookup in botocore's data: the models are pure and shared with
# the CLI (documents are validated offline, before any AWS call), and only the adapters touch botocore.
ECR_REGIONS_BY_PARTITION: Final[Mapping[str, frozenset[str]]] = {
    "aws": frozenset({
        "af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
        "ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4",
        "ap-southeast-5", "ap-southeast-6", "ap-southeast-7", "ca-central-1", "ca-west-1", "eu-central-1",
        "eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3",
        "il-central-1", "me-central-1", "me-south-1", "mx-central-1", "sa-east-1", "us-east-1", "us-east-2",
        "us-west-1", "us-west-2",
    }),
    "aws-cn": frozenset({"cn-north-1", "cn-northwest-1"}),
    "aws-us-gov": frozenset({"us-gov-east-1", "us-gov-west-1"}),
    "aws-iso": frozenset({"us-iso-east-1", "us-iso-west-1"}),
    "aws-iso-b": frozenset({"us-isob-east-1", "us-isob-west-1"}),
    "aws-iso-e": frozenset({"eu-isoe-west-1"}),
    "aws-iso-f": frozenset({"us-isof-east-1", "us-isof-south-1"}),
    "aws-eusc": frozenset({"eusc-de-east-1"}),
}  # fmt: skip
ECR_REGIONS: Final = frozenset(r for regions in ECR_REGIONS_BY_PARTITION.values() for r in regions)
"""Every Region with an ECR endpoint, in every partition."""
_PARTITION_OF: Final = {r: p for p, regions in ECR_REGIONS_BY_PARTITION.items() for r in regions}


def check_aws_region(value: str) -> str:
    """A Region name with an ECR endpoint (any partition): the one definition every model and route uses."""
    if not _AWS_REGION_RE.match(value):
        raise ValueError("must be an AWS Region code such as us-east-1 or eu-central-2")
    if value not in ECR_REGIONS:
        raise ValueError(f"{value} is not a Region with Amazon ECR")
    return value


def region_partition(region: str) -> str | None:
    """The partition of a Region with ECR (``aws``, ``aws-cn``, ``aws-us-gov``, ...), else ``None``."""
    return _PARTITION_OF.get(region)


def check_region_in_partition(value: str, *, stack_region: str) -> str:
    """A Region with ECR in the partition of ``stack_region`` (a stack cannot reach another partition)."""
    check_aws_region(value)
    partition, ours = region_partition(value), region_partition(stack_region)
    if ours is not None and partition != ours:
        raise ValueError(f"{value} is in the {partition} partition; this stack runs in {ours} ({stack_region})")
    return value


AwsRegion = Annotated[
    str,
    AfterValidator(check_aws_region),
    WithJsonSchema({"type": "string", "pattern": AWS_REGION_PATTERN, "examples": ["us-east-1", "eu-west-1"]}),
]

ACCOUNT_ID_PATTERN: Final = r"^[0-9]{12}$"

IAM_ROLE_ARN_MAX_LENGTH: Final = 2048
IAM_ROLE_ARN_PATTERN: Final = (
    r"^arn:aws(?:-[a-z]+)*:iam::[0-9]{12}:role/(?:[A-Za-z0-9+=,.@_-]+/)*[A-Za-z0-9+=,.@_-]{1,64}$"
)
_IAM_ROLE_ARN_RE: Final = re.compile(IAM_ROLE_ARN_PATTERN)


def check_iam_role_arn(value: str) -> str:
    if len(value) > IAM_ROLE_ARN_MAX_LENGTH:
        raise ValueError(f"must be at most {IAM_ROLE_ARN_MAX_LENGTH} characters")
    if not _IAM_ROLE_ARN_RE.match(value):
        raise ValueError("must be an IAM role ARN: arn:aws:iam::<12-digit account>:role/[<path>/]<name>")
    return value


IamRoleArn = Annotated[
    str,
    AfterValidator(check_iam_role_arn),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": IAM_ROLE_ARN_MAX_LENGTH,
            "pattern": IAM_ROLE_ARN_PATTERN,
            "examples": ["arn:aws:iam::123456789012:role/ecrcache/ecr-ptc-creation"],
        }
    ),
]

KMS_KEY_ARN_MAX_LENGTH: Final = 2048
KMS_KEY_ARN_PATTERN: Final = r"^arn:aws[a-z0-9-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[a-z0-9-]+$"
_KMS_KEY_ARN_RE: Final = re.compile(KMS_KEY_ARN_PATTERN)


def check_kms_key_arn(value: str) -> str:
    if len(value) > KMS_KEY_ARN_MAX_LENGTH:
        raise ValueError(f"must be at most {KMS_KEY_ARN_MAX_LENGTH} characters")
    if not _KMS_KEY_ARN_RE.match(value):
        raise ValueError(
            "must be a full KMS key ARN (arn:aws:kms:<region>:<account>:key/<key-id>); "
            "ECR creation templates accept neither key ids nor alias ARNs"
        )
    return value


KmsKeyArn = Annotated[
    str,
    AfterValidator(check_kms_key_arn),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": KMS_KEY_ARN_MAX_LENGTH,
            "pattern": KMS_KEY_ARN_PATTERN,
            "examples": ["arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"],
        }
    ),
]

# --------------------------------------------------------------------------------------------------
# Resource tags (AWS tagging rules)
# --------------------------------------------------------------------------------------------------

TAG_KEY_MAX_LENGTH: Final = 128
TAG_VALUE_MAX_LENGTH: Final = 256
MAX_TAGS: Final = 50
RESERVED_TAG_PREFIXES: Final = ("aws:", "ecrcache:")
"""``aws:`` is reserved by AWS; ``ecrcache:`` is reserved for the controller's own ownership tags."""

# AWS: letters, digits and spaces representable in UTF-8, plus ``_ . : / = + - @`` (the tagging API's
# pattern is ``^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$``): spaces are the space separators (category Zs), never
# tabs, line breaks or other control characters (``\s`` would let those through).
_TAG_SPACES: Final = "\u0020\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"
_TAG_CHARS: Final = rf"[\w{_TAG_SPACES}.:/=+\-@]"
_TAG_KEY_RE: Final = re.compile(rf"^{_TAG_CHARS}+$")
_TAG_VALUE_RE: Final = re.compile(rf"^{_TAG_CHARS}*$")


def check_tag_key(value: str) -> str:
    check_no_control_characters(value)
    if not 1 <= len(value) <= TAG_KEY_MAX_LENGTH:
        raise ValueError(f"tag key must be 1-{TAG_KEY_MAX_LENGTH} characters, got {len(value)}")
    if not _TAG_KEY_RE.match(value):
        raise ValueError("tag key may contain only letters, digits, spaces and _ . : / = + - @")
    for reserved in RESERVED_TAG_PREFIXES:
        if value.lower().startswith(reserved):
            raise ValueError(f"tag keys starting with '{reserved}' are reserved")
    return value


def check_tag_value(value: str) -> str:
    check_no_control_characters(value)
    if len(value) > TAG_VALUE_MAX_LENGTH:
        raise ValueError(f"tag value must be at most {TAG_VALUE_MAX_LENGTH} characters, got {len(value)}")
    if not _TAG_VALUE_RE.match(value):
        raise ValueError("tag value may contain only letters, digits, spaces and _ . : / = + - @")
    return value


TagKey = Annotated[
    str,
    AfterValidator(check_tag_key),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": TAG_KEY_MAX_LENGTH, "examples": ["team"]}),
]
TagValue = Annotated[
    str,
    AfterValidator(check_tag_value),
    WithJsonSchema({"type": "string", "maxLength": TAG_VALUE_MAX_LENGTH, "examples": ["platform"]}),
]

# --------------------------------------------------------------------------------------------------
# Free text
# --------------------------------------------------------------------------------------------------

DESCRIPTION_MAX_LENGTH: Final = 256

# C0 controls, DEL and C1 controls (Unicode category Cc). Free text that reaches AWS (ECR template and
# lifecycle rule descriptions, Secrets Manager descriptions, tag values) is one printable line: a NUL,
# an ESC or a CR would travel to ECR as is and come back in consoles, logs and terminals.
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
NO_CONTROL_CHARACTERS_PATTERN: Final = r"^[^\u0000-\u001f\u007f-\u009f]*$"


def check_no_control_characters(value: str) -> str:
    """Refuse control characters; the message names the first one (never the text around it)."""
    found = _CONTROL_RE.search(value)
    if found is not None:
        raise ValueError(
            f"must not contain control characters (found U+{ord(found.group()):04X} at position {found.start()}); "
            "use printable text on one line"
        )
    return value


PrintableText = Annotated[
    str,
    AfterValidator(check_no_control_characters),
    Field(json_schema_extra={"pattern": NO_CONTROL_CHARACTERS_PATTERN}),
]
"""Text without control characters (tabs and line breaks included)."""

Description = Annotated[PrintableText, Field(max_length=DESCRIPTION_MAX_LENGTH, examples=["Docker Hub images for CI"])]
"""Free text, at most 256 characters (ECR's creation-template description limit), no control characters."""

MAX_API_INTEGER: Final = 2**31 - 1
"""The largest integer an AWS API takes: ``integer`` shapes (Smithy's 32-bit signed integer), e.g. ECR's
``LifecyclePolicyRulePriority`` (botocore ``ecr/2015-09-21/service-2.json``: integer, min 1, no smaller max)."""

IMAGE_TAG_FILTER_PATTERN: Final = r"^[0-9a-zA-Z._*-]{1,128}$"
_IMAGE_TAG_FILTER_RE: Final = re.compile(IMAGE_TAG_FILTER_PATTERN)


def check_image_tag_filter(value: str) -> str:
    if not _IMAGE_TAG_FILTER_RE.match(value):
        raise ValueError("must be 1-128 characters of letters, digits, '.', '_', '-' and the wildcard '*'")
    return value


ImageTagFilter = Annotated[
    str,
    AfterValidator(check_image_tag_filter),
    WithJsonSchema({"type": "string", "pattern": IMAGE_TAG_FILTER_PATTERN, "examples": ["latest", "*-dev"]}),
]
"""An ECR ``imageTagMutabilityExclusionFilters`` wildcard filter."""

# --------------------------------------------------------------------------------------------------
# Schedule expressions (EventBridge and Secrets Manager rotation)
# --------------------------------------------------------------------------------------------------

_RATE_RE: Final = re.compile(r"^rate\(\s*([0-9]+)\s+([a-z]+)\s*\)$")
_CRON_RE: Final = re.compile(r"^cron\(\s*(.*?)\s*\)$")
_MONTHS: Final = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS: Final = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
RATE_UNITS: Final = {"minute": "minutes", "hour": "hours", "day": "days"}


def parse_rate(expression: str, *, units: Iterable[str] = RATE_UNITS) -> tuple[int, str]:
    """Parse ``rate(value unit)`` into ``(value, singular unit)``; raises ``ValueError``.

    EventBridge: the value is a positive integer; for 1 the unit is singular (``rate(1 hour)``),
    for more it is plural (``rate(2 hours)``).
    """
    match = _RATE_RE.match(expression)
    if not match:
        raise ValueError("must be rate(<value> <unit>), e.g. rate(1 day) or rate(12 hours)")
    value, unit = int(match.group(1)), match.group(2)
    allowed = list(units)
    singular = next((u for u in allowed if unit in (u, RATE_UNITS[u])), None)
    if singular is None:
        names = " | ".join(f"{u} | {RATE_UNITS[u]}" for u in allowed)
        raise ValueError(f"rate unit must be one of {names}, got {unit!r}")
    if value < 1:
        raise ValueError("rate value must be a positive integer")
    if value == 1 and unit != singular:
        raise ValueError(f"rate(1 ...) takes the singular unit: rate(1 {singular})")
    if value > 1 and unit == singular:
        raise ValueError(f"a rate value above 1 takes the plural unit: rate({value} {RATE_UNITS[singular]})")
    return value, singular


@dataclass(frozen=True, slots=True)
class _CronField:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    specials: str = ""

    def parse(self, token: str) -> int:
        """One value: a number in range, or a month/day name (``JAN`` = 1, ``SUN`` = 1)."""
        upper = token.upper()
        if upper in self.names:
            return self.names.index(upper) + 1
        if not token.isdigit():
            kind = "a number or name" if self.names else "a number"
            raise ValueError(f"cron {self.name} field: {token!r} is not {kind}")
        number = int(token)
        if not self.low <= number <= self.high:
            raise ValueError(f"cron {self.name} field: {number} is outside {self.low}-{self.high}")
        return number


_CRON_FIELDS: Final = (
    _CronField("minutes", 0, 59),
    _CronField("hours", 0, 23),
    _CronField("day-of-month", 1, 31, specials="?LW"),
    _CronField("month", 1, 12, _MONTHS),
    _CronField("day-of-week", 1, 7, _DAYS, specials="?L#"),
    _CronField("year", 1970, 2199),
)


def _cron_item(item: str, spec: _CronField) -> set[int]:
    """Expand one comma-separated item of a cron field: ``*``, ``a`` or ``a-b``, each with ``/step``."""
    base, slash, step_text = item.partition("/")
    if slash and not (step_text.isdigit() and int(step_text) >= 1):
        raise ValueError(f"cron {spec.name} field: the increment in {item!r} must be a positive integer")
    step = int(step_text) if slash else 1
    if base == "*":
        low, high = spec.low, spec.high
    elif "-" in base:
        first, _, last = base.partition("-")
        low, high = spec.parse(first), spec.parse(last)
        if low > high:
            raise ValueError(f"cron {spec.name} field: range {base!r} runs backwards")
    else:
        low = spec.parse(base)
        high = spec.high if slash else low
    return set(range(low, high + 1, step))


def _check_special(text: str, spec: _CronField) -> None:
    """Validate the special forms: ``?``; ``L``, ``LW``, ``<n>W`` (day of month); ``L``, ``<d>L``, ``<d>#<n>``."""
    if text in {"?", "L"} or (text == "LW" and "W" in spec.specials):
        return
    if "W" in spec.specials and text.endswith("W"):
        spec.parse(text[:-1])
        return
    if "#" in spec.specials and "#" in text:
        day, _, nth = text.partition("#")
        spec.parse(day)
        if not (nth.isdigit() and 1 <= int(nth) <= 5):
            raise ValueError(f"cron {spec.name} field: the n in {text!r} (n-th weekday of the month) must be 1-5")
        return
    if "#" in spec.specials and text.endswith("L"):
        spec.parse(text[:-1])
        return
    raise ValueError(f"cron {spec.name} field: {text!r} is not a valid use of ? L W or #")


def _cron_field(text: str, spec: _CronField) -> set[int] | None:
    """Validate one cron field; return the values it selects (``None`` for the special forms)."""
    if not text:
        raise ValueError(f"cron {spec.name} field is empty")
    upper = text.upper()
    tokens = [token for token in re.split(r"[,/-]", upper) if token not in spec.names]
    specials = sorted({char for token in tokens for char in token if char in "?LW#"})
    if specials:
        bad = [char for char in specials if char not in spec.specials]
        if bad:
            raise ValueError(f"cron {spec.name} field does not accept {' '.join(bad)}")
        if "," in text:
            raise ValueError(f"cron {spec.name} field: ? L W and # cannot be combined with a ',' list")
        _check_special(upper, spec)
        return None
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise ValueError(f"cron {spec.name} field has an empty list item")
        values |= _cron_item(item, spec)
    return values


def parse_cron(expression: str) -> tuple[str, ...]:
    """Validate ``cron(minutes hours day-of-month month day-of-week year)`` (EventBridge rules).

    Returns the six fields. Checks each field's value range and allowed wildcards (``, - * /`` for
    all; ``? L W`` for day-of-month; ``? L #`` for day-of-week), and that exactly one of
    day-of-month and day-of-week is ``?``.
    """
    match = _CRON_RE.match(expression)
    if not match:
        raise ValueError("must be cron(<minutes> <hours> <day-of-month> <month> <day-of-week> <year>)")
    fields = tuple(match.group(1).split())
    if len(fields) != len(_CRON_FIELDS):
        raise ValueError(f"cron expressions have 6 fields, got {len(fields)}")
    for text, spec in zip(fields, _CRON_FIELDS, strict=True):
        _cron_field(text, spec)
    day_of_month, day_of_week = fields[2], fields[4]
    if (day_of_month == "?") == (day_of_week == "?"):
        raise ValueError("exactly one of day-of-month and day-of-week must be '?' (EventBridge cannot use both)")
    return fields


def cron_hours(fields: Sequence[str]) -> set[int]:
    """The hours a validated cron expression fires at."""
    hours = _cron_field(fields[1], _CRON_FIELDS[1])
    return hours if hours is not None else set(range(24))


def cron_values(fields: Sequence[str], index: int) -> set[int] | None:
    """The values field ``index`` (0 minutes ... 5 year) of a validated cron expression selects
    (month and day names as numbers, ``SUN`` = 1); ``None`` for ``?`` and the forms with ``L``, ``W``, ``#``."""
    return _cron_field(fields[index], _CRON_FIELDS[index])


def normalise_schedule(expression: str) -> str:
    """Validate an EventBridge schedule expression and collapse its whitespace."""
    text = " ".join(expression.split())
    if text.startswith("rate("):
        value, unit = parse_rate(text)
        return f"rate({value} {unit if value == 1 else RATE_UNITS[unit]})"
    if text.startswith("cron("):
        return f"cron({' '.join(parse_cron(text))})"
    raise ValueError("must be a rate(...) or cron(...) schedule expression")


EventBridgeSchedule = Annotated[
    str,
    AfterValidator(normalise_schedule),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(?:rate\(.+\)|cron\(.+\))$",
            "description": "EventBridge schedule expression: rate(value unit) or cron(6 fields), UTC.",
            "examples": ["rate(12 hours)", "cron(0 5 * * ? *)"],
        }
    ),
]

ROTATION_MIN_HOURS: Final = 4
ROTATION_MAX_HOURS: Final = 23
ROTATION_MAX_DAYS: Final = 999


def normalise_rotation_schedule(expression: str) -> str:
    """Validate a Secrets Manager rotation ``ScheduleExpression``.

    ``rate(N hours)`` (4-23) or ``rate(N days)`` (1-999); or a cron expression whose minutes field
    is ``0`` and year field is ``*`` (rotation windows open on the hour and repeat within a year),
    firing at most every 4 hours.
    """
    text = " ".join(expression.split())
    if text.startswith("rate("):
        value, unit = parse_rate(text, units=("hour", "day"))
        if unit == "hour" and not ROTATION_MIN_HOURS <= value <= ROTATION_MAX_HOURS:
            raise ValueError(
                f"rotation rate in hours must be {ROTATION_MIN_HOURS}-{ROTATION_MAX_HOURS} "
                "(Secrets Manager rotates at most every 4 hours; use days beyond that)"
            )
        if unit == "day" and value > ROTATION_MAX_DAYS:
            raise ValueError(f"rotation rate in days must be at most {ROTATION_MAX_DAYS}")
        return f"rate({value} {unit if value == 1 else RATE_UNITS[unit]})"
    if text.startswith("cron("):
        fields = parse_cron(text)
        if fields[0] != "0":
            raise ValueError("rotation cron minutes field must be 0 (rotation windows open on the hour)")
        if fields[5] != "*":
            raise ValueError("rotation cron year field must be *")
        hours = sorted(cron_hours(fields))
        gaps = [b - a for a, b in itertools.pairwise(hours)] + [24 - hours[-1] + hours[0]]
        if min(gaps) < ROTATION_MIN_HOURS:
            raise ValueError("rotation cron must fire at most every 4 hours (Secrets Manager minimum)")
        return f"cron({' '.join(fields)})"
    raise ValueError("must be a rate(...) or cron(...) rotation schedule expression")


RotationSchedule = Annotated[
    str,
    AfterValidator(normalise_rotation_schedule),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(?:rate\(.+\)|cron\(.+\))$",
            "description": (
                "Secrets Manager rotation schedule: rate(N hours) with N 4-23, rate(N days) with N 1-999, "
                "or cron(0 <hours> <day-of-month> <month> <day-of-week> *) firing at most every 4 hours."
            ),
            "examples": ["rate(30 days)", "cron(0 4 1 * ? *)"],
        }
    ),
]
