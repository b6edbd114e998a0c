"""YAML the API and the CLI accept: safe, and without anchors or aliases.

An alias can expand a small document into gigabytes ("billion laughs"), and a self-referencing one
recurses; desired state never needs them. :class:`NoAliasLoader` refuses every alias with
:data:`ALIAS_PROBLEM` at the alias's line and column.
"""

from __future__ import annotations

from typing import Final

import yaml

__all__ = ["ALIAS_PROBLEM", "NoAliasLoader"]

ALIAS_PROBLEM: Final = "YAML aliases (&/*) are not accepted"


class NoAliasLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases."""

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(None, None, ALIAS_PROBLEM, event.start_mark)
        return super().compose_node(parent, index)  # type: ignore[arg-type]
