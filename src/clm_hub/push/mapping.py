"""From a customer's stage and segments to the tags and fields a tool should show.

Tags look like ``<prefix>:stage:loyal``, ``<prefix>:segment:at-risk``,
``<prefix>:nps:detractor``. Tools whose contacts have no tags get fields instead
(``<prefix>_stage`` ...). The hub owns exactly these tags and fields and nothing else:
every tag it adds or removes starts with its prefix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Desired", "PushMapping", "desired_state", "owned"]

Kind = Literal["stage", "segment", "nps"]


class PushMapping(BaseModel):
    """A connector's ``push`` table: what to write back and how carefully."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    kinds: tuple[Kind, ...] = ("stage", "segment", "nps")
    tags: bool | None = None
    """Write tags (default: when the connector can push tags)."""
    fields: bool | None = None
    """Write fields (default: when the connector can push fields but not tags)."""
    field_names: dict[Kind, str] = Field(default_factory=dict)
    """Field per kind; default ``<prefix>_stage``, ``<prefix>_segment``, ``<prefix>_nps``."""
    max_attempts: Annotated[int, Field(ge=1)] = 5
    retry_after: timedelta = timedelta(minutes=15)
    """First wait before retrying a failed record; doubles with each attempt."""
    max_change_share: Annotated[float, Field(gt=0, le=1)] = 0.2
    """Hold a cycle that would change more than this share of already-tagged records."""
    concurrency: Annotated[int, Field(ge=1, le=32)] = 4
    """Batches in flight at once (the rate limiter still paces them)."""

    def field_name(self, kind: Kind, prefix: str) -> str:
        return self.field_names.get(kind, f"{prefix}_{kind}")


@dataclass(frozen=True)
class Desired:
    """The owned tags and fields one tool record should have."""

    tags: frozenset[str]
    fields: Mapping[str, str | None]


def owned(tag: str, prefix: str) -> bool:
    """Whether a tag belongs to the hub (and so may be added or removed by it)."""
    return tag.startswith(f"{prefix}:")


def split_segments(segments: Sequence[str]) -> dict[Kind, set[str]]:
    """Sort the stage engine's namespaced segments into tag kinds.

    ``rfm:champions`` is a segment, ``nps:promoter`` an NPS class; any other namespace
    stays visible in the value (``churn:high`` becomes segment ``churn-high``) and a bare
    name is a segment as it is.
    """
    found: dict[Kind, set[str]] = {"stage": set(), "segment": set(), "nps": set()}
    for segment in segments:
        namespace, _, value = segment.partition(":")
        if not value:
            found["segment"].add(namespace)
        elif namespace == "rfm":
            found["segment"].add(value)
        elif namespace == "nps":
            found["nps"].add(value)
        else:
            found["segment"].add(f"{namespace}-{value}")
    return found


def desired_state(
    *,
    stage: str | None,
    segments: Sequence[str],
    nps_class: str | None,
    mapping: PushMapping,
    prefix: str,
    use_tags: bool,
    use_fields: bool,
    erased: bool = False,
) -> Desired:
    """What a record should show; a forgotten person shows nothing of ours."""
    values: dict[Kind, list[str]] = {"stage": [], "segment": [], "nps": []}
    if not erased:
        found = split_segments(segments)
        if nps_class:
            found["nps"].add(nps_class)
        if stage:
            found["stage"].add(stage)
        for kind in mapping.kinds:
            values[kind] = sorted(found[kind])
    tags = (
        frozenset(f"{prefix}:{kind}:{value}" for kind, items in values.items() for value in items)
        if use_tags
        else frozenset()
    )
    fields: dict[str, str | None] = {}
    if use_fields:
        for kind in mapping.kinds:
            # Multi-value fields (HubSpot checkboxes) separate options with ";".
            fields[mapping.field_name(kind, prefix)] = ";".join(values[kind]) or None
    return Desired(tags, fields)
