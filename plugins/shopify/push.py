"""Planning tag pushes and erasures, and reading per-record outcomes from the answers.

Pure functions: which mutations a change needs (only the tags given, never anything
else), how they are cut into requests that fit the cost limit, and what each alias's
``userErrors`` mean for its record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from clm_hub import PushChange, PushOutcome, PushStatus

from .documents import TagMutation
from .transport import RETRY_CODES, Answer
from .vendor import MutationPayload, customer_gid

__all__ = [
    "MAX_TAGS_PER_CALL",
    "MAX_TAG_LENGTH",
    "Planned",
    "batches",
    "erase_outcome",
    "plan_tags",
    "tag_outcome",
]

MAX_TAGS_PER_CALL = 250
"""Input arrays above this get a top-level MAX_INPUT_SIZE_EXCEEDED error."""
MAX_TAG_LENGTH = 255


@dataclass(frozen=True)
class Planned:
    """One change that needs requests: its position in the batch and its mutations."""

    index: int
    external_id: str
    mutations: tuple[TagMutation, ...]


def _problem(change: PushChange) -> str | None:
    if change.set_fields:
        return "the Shopify connector pushes tags only; field changes are not supported"
    both = change.add_tags & change.remove_tags
    if both:
        return f"tags both added and removed: {', '.join(sorted(both))}"
    for tag in change.add_tags | change.remove_tags:
        if not tag.strip():
            return "empty tag"
        if "," in tag:
            return f"tag {tag!r} contains a comma, which Shopify would split into several tags"
        if len(tag) > MAX_TAG_LENGTH:
            return f"tag {tag[:40]!r}... is longer than {MAX_TAG_LENGTH} characters"
    if max(len(change.add_tags), len(change.remove_tags)) > MAX_TAGS_PER_CALL:
        return f"more than {MAX_TAGS_PER_CALL} tags in one change"
    return None


def plan_tags(changes: Sequence[PushChange]) -> tuple[dict[int, PushOutcome], list[Planned]]:
    """Outcomes settled without asking Shopify, and the mutations the rest need."""
    settled: dict[int, PushOutcome] = {}
    planned: list[Planned] = []
    for index, change in enumerate(changes):
        problem = _problem(change)
        gid = ""
        if problem is None:
            try:
                gid = customer_gid(change.external_id)
            except ValueError as exc:
                problem = str(exc)
        if problem is not None:
            settled[index] = PushOutcome(
                external_id=change.external_id, status=PushStatus.FAILED, reason=problem
            )
            continue
        mutations = tuple(
            TagMutation(f"c{index}{suffix}", mutation, gid, tuple(sorted(tags)))
            for suffix, mutation, tags in (
                ("add", "tagsAdd", change.add_tags),
                ("remove", "tagsRemove", change.remove_tags),
            )
            if tags
        )
        if mutations:
            planned.append(Planned(index, change.external_id, mutations))
        else:
            settled[index] = PushOutcome(external_id=change.external_id, status=PushStatus.OK)
    return settled, planned


def batches(planned: Sequence[Planned], limit: int) -> list[list[Planned]]:
    """Consecutive groups of at most ``limit`` mutations; a change is never split."""
    out: list[list[Planned]] = []
    size = 0
    for item in planned:
        if not out or size + len(item.mutations) > limit:
            out.append([])
            size = 0
        out[-1].append(item)
        size += len(item.mutations)
    return out


def _alias_errors(answer: Answer, alias: str) -> list[str]:
    return [e.message for e in answer.errors if e.path and e.path[0] == alias]


def _alias_retriable(answer: Answer, alias: str) -> bool:
    return any(e.code in RETRY_CODES for e in answer.errors if e.path and e.path[0] == alias)


def tag_outcome(item: Planned, answer: Answer) -> PushOutcome:
    """OK when every mutation of the change landed; else its userErrors as the reason."""
    reasons: list[str] = []
    retry = False
    for mutation in item.mutations:
        errors = _alias_errors(answer, mutation.alias)
        if errors:
            retry = retry or _alias_retriable(answer, mutation.alias)
            reasons.extend(f"{mutation.mutation}: {message}" for message in errors)
            continue
        raw = answer.data.get(mutation.alias)
        try:
            payload = MutationPayload.model_validate(raw)
        except ValidationError:
            retry = True
            reasons.append(f"{mutation.mutation}: no readable result")
            continue
        reasons.extend(f"{mutation.mutation}: {e.message}" for e in payload.user_errors)
    if not reasons:
        return PushOutcome(external_id=item.external_id, status=PushStatus.OK)
    return PushOutcome(
        external_id=item.external_id,
        status=PushStatus.RETRY if retry else PushStatus.FAILED,
        reason="; ".join(reasons),
    )


def erase_outcome(external_id: str, alias: str, answer: Answer) -> PushOutcome:
    """OK once Shopify queued the erasure, or when the customer is already gone."""
    errors = _alias_errors(answer, alias)
    if errors:
        retry = _alias_retriable(answer, alias)
        status = PushStatus.RETRY if retry else PushStatus.FAILED
        return PushOutcome(external_id=external_id, status=status, reason="; ".join(errors))
    try:
        payload = MutationPayload.model_validate(answer.data.get(alias))
    except ValidationError:
        return PushOutcome(
            external_id=external_id, status=PushStatus.RETRY, reason="no readable result"
        )
    if not payload.user_errors:
        return PushOutcome(external_id=external_id, status=PushStatus.OK)
    codes = {e.code for e in payload.user_errors}
    reason = "; ".join(e.message for e in payload.user_errors)
    if codes == {"DOES_NOT_EXIST"}:
        # Nothing left to erase in Shopify: the goal is reached.
        return PushOutcome(external_id=external_id, status=PushStatus.OK, reason=reason)
    status = PushStatus.RETRY if "FAILED_TO_REQUEST" in codes else PushStatus.FAILED
    return PushOutcome(external_id=external_id, status=status, reason=reason)
