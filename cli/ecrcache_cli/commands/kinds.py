"""The resource kinds as the commands accept them (``rules``, ``warm_set`` ...) and where the API keeps them."""

from __future__ import annotations

from typing import Final

import click

__all__ = ["COLLECTIONS", "KINDS", "KIND_CHOICE", "NAME_FIELD"]

KINDS: Final = {
    "rule": "rule",
    "rules": "rule",
    "credential": "credential",
    "credentials": "credential",
    "warm-set": "warm-set",
    "warm-sets": "warm-set",
    "warm_set": "warm-set",
    "warm_sets": "warm-set",
}
COLLECTIONS: Final = {"rule": "rules", "credential": "credentials", "warm-set": "warm-sets"}
NAME_FIELD: Final = {"rule": "prefix", "credential": "name", "warm-set": "name"}
KIND_CHOICE: Final = click.Choice(sorted(KINDS), case_sensitive=False)
