"""Contract scenarios for connectors that pull survey responses (``pull_survey_responses``).

The same checks as the contact scenarios of contract.py - every record once across pages,
an incremental pull from the cursor, pacing without 429s, faults retried, refused
credentials not retried - for a harness implementing ``SurveyHarness``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

from clm_hub.connectors.base import Capability
from clm_hub.errors import AuthError
from clm_hub.records import StreamCursor, SurveyResponseRecord
from clm_hub.sandbox import Fault
from clm_hub.testing.harness import SurveyHarness
from clm_hub.testing.runner import (
    ContractRun,
    ContractViolation,
    Scenario,
    check,
    exactly,
    pull_all,
    pull_through_faults,
)

__all__ = [
    "SURVEY_SCENARIOS",
    "responses_auth_failure",
    "responses_fault_recovery",
    "responses_full_pull",
    "responses_incremental_pull",
    "responses_pacing",
    "responses_page_boundaries",
]

PACING_SECONDS = 0.8
"""How long the pacing burst should take at the planned limit: long enough to bite."""


def _survey(run: ContractRun) -> SurveyHarness:
    run.require(Capability.SURVEY_RESPONSES)
    harness = run.harness
    check(
        isinstance(harness, SurveyHarness),
        "the connector pulls survey responses, so its harness must implement SurveyHarness "
        "(add_responses, add_response_now)",
    )
    assert isinstance(harness, SurveyHarness)
    return harness


def _linked(records: list[SurveyResponseRecord]) -> None:
    unlinked = [r.external_id for r in records if not (r.customer_external_id or r.email)]
    check(not unlinked, f"responses without a respondent id or email: {unlinked[:5]}")


async def responses_full_pull(run: ContractRun) -> None:
    """A full pull returns every answered response once, across several pages, each linked
    to its respondent, and ends with a cursor to resume from."""
    ids = _survey(run).add_responses(2 * run.harness.page_size + 3)
    pulled = await pull_all(run.open().pull_survey_responses(None))
    exactly(pulled, ids, "full pull of survey responses")
    _linked(pulled.records)
    check(pulled.pages >= 3, f"{len(ids)} responses came in {pulled.pages} page(s), not >= 3")
    check(pulled.cursor is not None, "the full pull yielded no cursor: nothing to resume from")


async def responses_incremental_pull(run: ContractRun) -> None:
    """From the cursor a full pull ended with, a pull returns a response given since, and
    no older response except those on the cursor's own boundary timestamp."""
    survey = _survey(run)
    ids = survey.add_responses(run.harness.page_size + 2)
    full = await pull_all(run.open().pull_survey_responses(None))
    exactly(full, ids, "full pull before the new response")
    check(full.cursor is not None, "the full pull yielded no cursor to resume from")
    assert full.cursor is not None
    new = survey.add_response_now()
    since: StreamCursor = full.cursor
    later = await pull_all(run.open().pull_survey_responses(since))
    check(new in later.ids, f"the incremental pull missed the new response {new}")
    seen = {r.external_id: r for r in full.records}
    boundary = since.updated_since
    stale = [
        i
        for i in set(later.ids) - {new}
        if boundary is None or i not in seen or seen[i].answered_at < boundary
    ]
    check(
        not stale,
        f"the incremental pull returned {len(stale)} older response(s) before its cursor "
        f"({boundary}), e.g. {sorted(stale)[:5]}",
    )


async def responses_page_boundaries(run: ContractRun) -> None:
    """Exactly one page of responses, then one more than a page, come back complete."""
    survey = _survey(run)
    size = run.harness.page_size
    ids = survey.add_responses(size)
    connector = run.open()
    one = await pull_all(connector.pull_survey_responses(None))
    exactly(one, ids, f"{size} responses (one page)")
    ids += survey.add_responses(1)
    pulled = await pull_all(connector.pull_survey_responses(None))
    exactly(pulled, ids, f"{size + 1} responses (one page and one)")
    check(pulled.pages >= 2, f"{size + 1} responses came in one page of size {size}")


async def responses_pacing(run: ContractRun) -> None:
    """Under a small rate limit, a burst of page requests is paced: it takes time and
    draws no 429 at all."""
    survey = _survey(run)
    plan = run.harness.limit_rate()
    pages = plan.burst + math.ceil(PACING_SECONDS * plan.per_second)
    ids = survey.add_responses(pages * run.harness.page_size)
    connector = run.open(**dict(plan.settings))
    before = run.harness.throttled_count()
    started = time.monotonic()
    pulled = await pull_all(connector.pull_survey_responses(None))
    elapsed = time.monotonic() - started
    exactly(pulled, ids, "paced full pull")
    throttled = run.harness.throttled_count() - before
    check(throttled == 0, f"{throttled} request(s) were answered 429: the connector did not pace")
    floor = 0.5 * (pages - plan.burst) / plan.per_second
    check(elapsed >= floor, f"{pulled.pages} pages took {elapsed:.2f} s, under {floor:.2f} s")


async def responses_fault_recovery(run: ContractRun) -> None:
    """A 5xx, a 429 and a malformed body, one on each page request, are retried and the
    pull still returns everything exactly once."""
    ids = _survey(run).add_responses(2 * run.harness.page_size + 1)
    await pull_through_faults(run, ids, lambda connector: connector.pull_survey_responses(None))


async def responses_auth_failure(run: ContractRun) -> None:
    """Refused credentials raise ``AuthError`` at once: no retries, no secret shown."""
    _survey(run).add_responses(3)
    faults = run.harness.faults
    connector = run.open()
    secrets = run.secrets()
    faults.inject(Fault.EXPIRED_TOKEN, times=5)
    try:
        await pull_all(connector.pull_survey_responses(None))
    except AuthError as exc:
        leaked = [s[:4] + "..." for s in secrets if s in str(exc)]
        check(not leaked, f"the AuthError message shows secrets {leaked}")
    else:
        raise ContractViolation("a pull with refused credentials did not raise AuthError")
    finally:
        faults.clear()
    check(len(faults.applied) <= 2, f"{len(faults.applied)} requests with refused credentials")
    check(connector.http.stats.retries == 0, "AuthError was retried")


SURVEY_SCENARIOS: Mapping[str, Scenario] = {
    "responses_full_pull": responses_full_pull,
    "responses_incremental_pull": responses_incremental_pull,
    "responses_page_boundaries": responses_page_boundaries,
    "responses_pacing": responses_pacing,
    "responses_fault_recovery": responses_fault_recovery,
    "responses_auth_failure": responses_auth_failure,
}
