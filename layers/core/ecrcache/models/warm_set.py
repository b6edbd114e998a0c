"""Warm sets: which images to pull through the cache ahead of need, for which platforms, how often.

Image references are relative to the rule's upstream (``library/node:18-alpine`` under a Docker Hub
rule caches ``<prefix>/library/node:18-alpine``) and follow the OCI distribution reference grammar.
Whether the rule exists, and whether it is Docker Hub (official images need ``library/``), is the
service's business: :func:`needs_library_prefix` is the helper it uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Final, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from ecrcache.models.common import (
    PATH_COMPONENT,
    Description,
    EcrPrefix,
    EventBridgeSchedule,
    parse_cron,
    parse_rate,
)
from ecrcache.models.image_reference import (
    ImageRef,
    ImageReference,
    check_repository,
    parse_image_reference,
)

MAX_IMAGES: Final = 200
MAX_TAG_PATTERNS: Final = 50
MAX_PLATFORMS: Final = 8
MAX_WILDCARDS: Final = 4
DEFAULT_PLATFORMS: Final = ("linux/amd64", "linux/arm64")
DEFAULT_SCHEDULE: Final = "rate(1 day)"
DIGEST_ISSUE: Final = "aws/containers-roadmap#2837"

_TAG_GLOB_RE: Final = re.compile(r"^[A-Za-z0-9_*][A-Za-z0-9_.*-]{0,127}$")

TAG_PATTERN_PATTERN: Final = rf"^{PATH_COMPONENT}(?:/{PATH_COMPONENT})*:[A-Za-z0-9_*][A-Za-z0-9_.*-]{{0,127}}$"


# --------------------------------------------------------------------------------------------------
# Tag patterns
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TagPattern:
    """``repository:glob`` — warm the upstream tags of ``repository`` that match ``glob``."""

    repository: str
    glob: str

    def regex(self) -> re.Pattern[str]:
        """The glob as a regex: ``*`` matches any run of tag characters, everything else is literal."""
        return re.compile("^" + ".*".join(re.escape(part) for part in self.glob.split("*")) + "$")

    def matches(self, tag: str) -> bool:
        return self.regex().match(tag) is not None


def parse_tag_pattern(text: str) -> TagPattern:
    """Parse ``<repository>:<tag glob>``; the glob has 1-4 ``*``. Raises ``ValueError``."""
    repository, colon, glob = text.rpartition(":")
    if not colon or "/" in glob:
        raise ValueError("must be <repository>:<tag glob>, e.g. library/node:20.*-alpine")
    check_repository(repository)
    if not _TAG_GLOB_RE.match(glob):
        raise ValueError("the tag glob must be 1-128 characters of letters, digits, '_', '.', '-' and '*'")
    wildcards = glob.count("*")
    if wildcards == 0:
        raise ValueError("the tag glob has no '*'; list a single tag under images instead")
    if wildcards > MAX_WILDCARDS:
        raise ValueError(f"the tag glob may have at most {MAX_WILDCARDS} '*', got {wildcards}")
    return TagPattern(repository, glob)


def _check_tag_pattern(text: str) -> str:
    parse_tag_pattern(text)
    return text


TagPatternText = Annotated[
    str,
    AfterValidator(_check_tag_pattern),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": TAG_PATTERN_PATTERN,
            "description": "<repository>:<tag glob> with 1-4 '*', matched against the upstream's tags.",
            "examples": ["library/node:20.*-alpine", "library/python:3.*-slim"],
        }
    ),
]

# --------------------------------------------------------------------------------------------------
# Platforms
# --------------------------------------------------------------------------------------------------

KNOWN_OS: Final = frozenset(
    {
        "aix",
        "android",
        "darwin",
        "dragonfly",
        "freebsd",
        "illumos",
        "ios",
        "js",
        "linux",
        "netbsd",
        "openbsd",
        "plan9",
        "solaris",
        "wasip1",
        "windows",
    }
)
"""GOOS values (``go tool dist list``), which OCI image indexes use for ``platform.os``."""
KNOWN_ARCH: Final = frozenset(
    {
        "386",
        "amd64",
        "arm",
        "arm64",
        "loong64",
        "mips",
        "mips64",
        "mips64le",
        "mipsle",
        "ppc64",
        "ppc64le",
        "riscv64",
        "s390x",
        "wasm",
    }
)
"""GOARCH values, used for ``platform.architecture``."""
KNOWN_VARIANTS: Final = {
    "arm": frozenset({"v5", "v6", "v7", "v8"}),
    "arm64": frozenset({"v8", "v9", *(f"v8.{n}" for n in range(10)), *(f"v9.{n}" for n in range(6))}),
    "amd64": frozenset({"v1", "v2", "v3", "v4"}),
    "riscv64": frozenset({"rva20u64", "rva22u64", "rva23u64"}),
}
"""``platform.variant`` values per architecture (GOARM, GOARM64, GOAMD64, GORISCV64)."""
PLATFORM_PATTERN: Final = r"^[a-z0-9]+/[a-z0-9]+(?:/[a-z0-9.]+)?$"


def parse_platform(text: str) -> tuple[str, str, str | None]:
    """Parse ``os/arch[/variant]`` against the known GOOS/GOARCH/variant values. Raises ``ValueError``."""
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError("a platform is os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8")
    os_name, arch = parts[0], parts[1]
    variant = parts[2] if len(parts) == 3 else None
    if os_name not in KNOWN_OS:
        raise ValueError(f"unknown os {os_name!r}; known: {', '.join(sorted(KNOWN_OS))}")
    if arch not in KNOWN_ARCH:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(sorted(KNOWN_ARCH))}")
    if variant is not None:
        allowed = KNOWN_VARIANTS.get(arch, frozenset())
        if variant not in allowed:
            known = ", ".join(sorted(allowed)) if allowed else "none"
            raise ValueError(f"unknown variant {variant!r} for {arch}; known: {known}")
    return os_name, arch, variant


def _check_platform(text: str) -> str:
    parse_platform(text)
    return text


Platform = Annotated[
    str,
    AfterValidator(_check_platform),
    WithJsonSchema({"type": "string", "pattern": PLATFORM_PATTERN, "examples": ["linux/amd64", "linux/arm64/v8"]}),
]

# --------------------------------------------------------------------------------------------------
# Schedule
# --------------------------------------------------------------------------------------------------


def check_warm_schedule(expression: str) -> str:
    """Warm at most once an hour: ECR refreshes a cached tag at most every 24 hours, and each run
    spends upstream requests (Docker Hub rate limits). ``rate`` of at least 60 minutes, or a cron
    expression whose minutes field is a single minute."""
    if expression.startswith("rate("):
        value, unit = parse_rate(expression)
        if unit == "minute" and value < 60:
            raise ValueError("warm sets run at most once an hour; use rate(1 hour) or longer")
    else:
        fields = parse_cron(expression)
        if not fields[0].isdigit():
            raise ValueError("warm sets run at most once an hour; the cron minutes field must be a single minute")
    return expression


WarmSchedule = Annotated[EventBridgeSchedule, AfterValidator(check_warm_schedule)]

# --------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------


class TopTags(BaseModel):
    """Warm the most-pulled tags of the rule's cached repositories."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [{"count": 20}]})

    count: StrictInt = Field(ge=1, le=100, description="How many tags, most pulled first (1-100).")
    window_days: StrictInt = Field(default=14, ge=1, le=90, description="Pull statistics window in days (1-90).")


class WarmBudget(BaseModel):
    """Limits on one warm run."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, json_schema_extra={"examples": [{"max_upstream_requests_per_run": 100}]}
    )

    max_upstream_requests_per_run: StrictInt = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Upper bound on requests that can reach the upstream in one run (manifest and tag-list calls).",
    )


def _unique(values: tuple[str, ...], what: str) -> tuple[str, ...]:
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{what} must be unique; repeated: {', '.join(repeated)}")
    return values


class WarmSetSpec(BaseModel):
    """Desired state of one warm set, keyed by its name."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "rule": "docker-hub",
                    "images": ["library/node:18-alpine", "library/python:3.12-slim"],
                    "tag_patterns": ["library/node:20.*-alpine"],
                    "top": {"count": 20, "window_days": 14},
                    "schedule": "cron(0 5 * * ? *)",
                }
            ]
        },
    )

    rule: EcrPrefix = Field(description="ECR prefix of the rule the images are pulled through.")
    images: tuple[ImageRef, ...] = Field(
        default=(),
        max_length=MAX_IMAGES,
        description=(
            "Images relative to the rule's upstream. Prefer tags or tag@digest: ECR cannot fetch an uncached "
            f"image by digest alone ({DIGEST_ISSUE})."
        ),
        examples=[["library/node:18-alpine", "library/python:3.12-slim"]],
    )
    tag_patterns: tuple[TagPatternText, ...] = Field(
        default=(),
        max_length=MAX_TAG_PATTERNS,
        description="<repository>:<tag glob> entries; the upstream tags matching each glob are warmed.",
        examples=[["library/node:20.*-alpine"]],
    )
    platforms: tuple[Platform, ...] = Field(
        default=DEFAULT_PLATFORMS,
        max_length=MAX_PLATFORMS,
        description="Platforms to warm from multi-platform images (os/arch[/variant]), 1-8 of them.",
    )
    top: TopTags | None = Field(default=None, description="Also warm the most-pulled tags over a window.")
    schedule: WarmSchedule = Field(
        default=DEFAULT_SCHEDULE,
        description="EventBridge schedule (UTC), at most hourly.",
        examples=["rate(12 hours)", "cron(0 5 * * ? *)"],
    )
    budget: WarmBudget = Field(default_factory=WarmBudget, description="Limits on one run.")
    restore_archived: bool = Field(
        default=False,
        strict=True,
        description=(
            "Restore a cached image found in the archive storage class (UpdateImageStorageClass to STANDARD) "
            "instead of reporting it as archived. Restores take time and archive has a 90-day minimum charge."
        ),
    )
    description: Description | None = Field(default=None, description="Free text, at most 256 characters.")

    @field_validator("images")
    @classmethod
    def _unique_images(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _unique(value, "images")

    @field_validator("tag_patterns")
    @classmethod
    def _unique_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _unique(value, "tag_patterns")

    @field_validator("platforms")
    @classmethod
    def _unique_platforms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("platforms needs at least one os/arch, e.g. linux/amd64")
        return _unique(value, "platforms")

    @model_validator(mode="after")
    def _something_to_warm(self) -> Self:
        if not (self.images or self.tag_patterns or self.top):
            raise ValueError("a warm set needs at least one of images, tag_patterns or top")
        return self

    def image_references(self) -> tuple[ImageReference, ...]:
        """``images`` parsed."""
        return tuple(parse_image_reference(i) for i in self.images)

    def parsed_tag_patterns(self) -> tuple[TagPattern, ...]:
        """``tag_patterns`` parsed."""
        return tuple(parse_tag_pattern(p) for p in self.tag_patterns)
