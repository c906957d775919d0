"""The connector contract kit: the same scenarios against any connector and its simulator.

Every scenario builds the connector exactly as the hub does (``HubSettings`` ->
``configure_connectors`` -> ``open_connector``) and talks to the plugin's simulator over
real HTTP on loopback. Retry backoff runs on a virtual clock so injected faults cost no
time; rate-limit pacing runs on the real clock, as in production.

For pytest, subclass ``ConnectorContract``::

    class TestAcmeContract(ConnectorContract):
        harness = AcmeHarness  # a class or factory returning a ConnectorHarness

Each ``test_*`` method runs one scenario against a fresh harness; scenarios that need a
capability the connector does not declare are skipped. Outside pytest, ``run_scenario``
runs one of ``SCENARIOS``; inside a running event loop, ``async with ContractRun(...)``
and await the scenario function.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar

from clm_hub.connectors.base import Capability, Connector
from clm_hub.errors import AuthError, ConnectorError
from clm_hub.records import ContactRecord, PushChange, PushOutcome, PushStatus, StreamCursor
from clm_hub.sandbox import Fault, serve
from clm_hub.testing.harness import (
    ConnectorHarness,
    FieldsHarness,
    LoopbackServer,
)
from clm_hub.testing.runner import (
    ContractRun,
    ContractViolation,
    Scenario,
    ScenarioSkipped,
    check,
    exactly,
    pull_all,
    pull_through_faults,
)
from clm_hub.testing.surveys import (
    SURVEY_SCENARIOS,
    responses_auth_failure,
    responses_fault_recovery,
    responses_full_pull,
    responses_incremental_pull,
    responses_pacing,
    responses_page_boundaries,
)

__all__ = [
    "SCENARIOS",
    "ConnectorContract",
    "auth_failure",
    "fault_recovery",
    "full_pull",
    "incremental_pull",
    "orders_full_pull",
    "pacing",
    "pagination_boundaries",
    "partial_failure",
    "push_fields",
    "push_tags",
    "run_scenario",
]

PACING_SECONDS = 0.8
"""How long the pacing burst should take at the planned limit: long enough to bite."""


async def _push(connector: Connector[Any], changes: Sequence[PushChange]) -> dict[str, PushOutcome]:
    """Push in batches of ``max_push_batch``; one outcome per change, by external id."""
    outcomes: list[PushOutcome] = []
    size = max(1, connector.max_push_batch)
    for start in range(0, len(changes), size):
        outcomes.extend(await connector.push(changes[start : start + size]))
    check(
        len(outcomes) == len(changes),
        f"push returned {len(outcomes)} outcomes for {len(changes)} changes",
    )
    by_id = {outcome.external_id: outcome for outcome in outcomes}
    check(
        set(by_id) == {c.external_id for c in changes},
        f"push outcomes name {sorted(by_id)}, not the changed records",
    )
    return by_id


def _all_ok(outcomes: Mapping[str, PushOutcome], what: str) -> None:
    bad = {i: (o.status.value, o.reason) for i, o in outcomes.items() if o.status != PushStatus.OK}
    check(not bad, f"{what}: expected every outcome ok, got {bad}")


# -- pulls ------------------------------------------------------------------------------------


async def full_pull(run: ContractRun) -> None:
    """A full pull returns every seeded contact exactly once, across several pages, and
    ends with a cursor to resume from."""
    run.require(Capability.CONTACTS)
    ids = run.harness.add_contacts(2 * run.harness.page_size + 3)
    pulled = await pull_all(run.open().pull_contacts(None))
    exactly(pulled, ids, "full pull of contacts")
    check(pulled.pages >= 3, f"{len(ids)} contacts came in {pulled.pages} page(s), not >= 3")
    check(pulled.cursor is not None, "the full pull yielded no cursor: nothing to resume from")


async def orders_full_pull(run: ContractRun) -> None:
    """A full pull of orders returns every seeded order exactly once, linked to a buyer."""
    run.require(Capability.ORDERS)
    ids = run.orders_harness().add_orders(2 * run.harness.page_size + 1)
    pulled = await pull_all(run.open().pull_orders(None))
    exactly(pulled, ids, "full pull of orders")
    unlinked = [o.external_id for o in pulled.records if not (o.customer_external_id or o.email)]
    check(not unlinked, f"orders without a buyer id or email: {unlinked[:5]}")


async def incremental_pull(run: ContractRun) -> None:
    """From the cursor a full pull ended with, a pull returns a contact changed since, and
    no unchanged contact except those on the cursor's own boundary timestamp."""
    run.require(Capability.CONTACTS)
    ids = run.harness.add_contacts(run.harness.page_size + 2)
    full = await pull_all(run.open().pull_contacts(None))
    exactly(full, ids, "full pull before the change")
    check(full.cursor is not None, "the full pull yielded no cursor to resume from")
    assert full.cursor is not None
    touched = ids[len(ids) // 2]
    run.harness.touch_contact(touched)
    since = full.cursor
    changed = await pull_all(run.open().pull_contacts(since))
    check(touched in changed.ids, f"the incremental pull missed the changed contact {touched}")
    seen = {record.external_id: record for record in full.records}
    stale = [i for i in set(changed.ids) - {touched} if not _on_boundary(seen.get(i), since)]
    check(
        not stale,
        f"the incremental pull returned {len(stale)} unchanged contact(s) older than its "
        f"cursor ({since.updated_since}), e.g. {sorted(stale)[:5]}",
    )


def _on_boundary(record: ContactRecord | None, since: StreamCursor) -> bool:
    """Inclusive ``updated_since`` filters legitimately return the boundary records."""
    if record is None or record.updated_at is None or since.updated_since is None:
        return False
    return record.updated_at >= since.updated_since


async def pagination_boundaries(run: ContractRun) -> None:
    """Exactly one page of contacts, then one more than a page, come back complete."""
    run.require(Capability.CONTACTS)
    size = run.harness.page_size
    ids = run.harness.add_contacts(size)
    connector = run.open()
    exactly(await pull_all(connector.pull_contacts(None)), ids, f"{size} contacts (one page)")
    ids += run.harness.add_contacts(1)
    pulled = await pull_all(connector.pull_contacts(None))
    exactly(pulled, ids, f"{size + 1} contacts (one page and one)")
    check(pulled.pages >= 2, f"{size + 1} contacts came in one page of size {size}")


# -- pushes -----------------------------------------------------------------------------------


async def push_tags(run: ContractRun) -> None:
    """Adding, swapping and removing owned tags leaves exactly the owned tags asked for,
    and every foreign tag untouched."""
    run.require(Capability.TAG_PUSH)
    tool = run.tags_harness()
    a, b = run.harness.add_contacts(2)
    tool.add_foreign_tag(a, "VIP")
    owned_prefix = f"{run.prefix}:"
    foreign = {i: {t for t in tool.tags(i) if not t.startswith(owned_prefix)} for i in (a, b)}
    check("VIP" in foreign[a], "add_foreign_tag did not tag the contact in the simulator")
    new, loyal = f"{run.prefix}:stage:new", f"{run.prefix}:stage:loyal"
    champions = f"{run.prefix}:segment:champions"
    connector = run.open()

    def expect(external_id: str, owned: set[str], step: str) -> None:
        tags = tool.tags(external_id)
        mine = {t for t in tags if t.startswith(owned_prefix)}
        check(mine == owned, f"{step}: {external_id} has owned tags {sorted(mine)}")
        check(
            foreign[external_id] <= tags,
            f"{step}: foreign tags {sorted(foreign[external_id] - tags)} of {external_id} are gone",
        )

    add = [
        PushChange(external_id=a, add_tags=frozenset({new, champions})),
        PushChange(external_id=b, add_tags=frozenset({new})),
    ]
    _all_ok(await _push(connector, add), "adding tags")
    expect(a, {new, champions}, "after adding")
    expect(b, {new}, "after adding")
    swap = PushChange(
        external_id=a, add_tags=frozenset({loyal}), remove_tags=frozenset({new, champions})
    )
    _all_ok(await _push(connector, [swap]), "swapping tags")
    expect(a, {loyal}, "after swapping")
    expect(b, {new}, "after swapping another contact's tags")
    _all_ok(
        await _push(connector, [PushChange(external_id=a, remove_tags=frozenset({loyal}))]),
        "removing tags",
    )
    expect(a, set(), "after removing")


def _field_state(tool: FieldsHarness, external_id: str, names: Sequence[str]) -> dict[str, Any]:
    values = tool.field_values(external_id)
    out: dict[str, Any] = {}
    for name in names:
        value = values.get(name) or None
        # Multi-value fields may come back in another order.
        out[name] = None if value is None else frozenset(value.split(";"))
    return out


async def push_fields(run: ContractRun) -> None:
    """Setting, changing and clearing owned fields leaves exactly the values asked for."""
    run.require(Capability.FIELD_PUSH)
    tool = run.fields_harness()
    a, b = run.harness.add_contacts(2)
    stage, segment = run.field_name("stage"), run.field_name("segment")
    connector = run.open()
    await connector.prepare_push({stage: ["new", "loyal"], segment: ["champions", "at_risk"]})

    def expect(external_id: str, wanted: Mapping[str, str | None], step: str) -> None:
        got = _field_state(tool, external_id, [stage, segment])
        want = {k: None if v is None else frozenset(v.split(";")) for k, v in wanted.items()}
        check(got == want, f"{step}: {external_id} has {got}, expected {want}")

    set_both = [
        PushChange(external_id=a, set_fields={stage: "new", segment: "champions;at_risk"}),
        PushChange(external_id=b, set_fields={stage: "loyal"}),
    ]
    _all_ok(await _push(connector, set_both), "setting fields")
    expect(a, {stage: "new", segment: "champions;at_risk"}, "after setting")
    expect(b, {stage: "loyal", segment: None}, "after setting")
    change = PushChange(external_id=a, set_fields={stage: "loyal", segment: None})
    _all_ok(await _push(connector, [change]), "changing fields")
    expect(a, {stage: "loyal", segment: None}, "after changing")
    clear = PushChange(external_id=a, set_fields={stage: None})
    _all_ok(await _push(connector, [clear]), "clearing fields")
    expect(a, {stage: None, segment: None}, "after clearing")
    expect(b, {stage: "loyal", segment: None}, "after clearing another contact")


async def partial_failure(run: ContractRun) -> None:
    """One record the tool refuses fails alone, with a reason; the others land."""
    run.require(Capability.TAG_PUSH, Capability.FIELD_PUSH)
    ids = run.harness.add_contacts(3)
    good, bad = [ids[0], ids[2]], ids[1]
    connector = run.open()
    changes: list[PushChange]
    landed: Callable[[str], bool]
    if Capability.TAG_PUSH in run.capabilities:
        tags = run.tags_harness()
        tags.fail_record(bad)
        tag = f"{run.prefix}:stage:new"
        changes = [PushChange(external_id=i, add_tags=frozenset({tag})) for i in ids]

        def landed(i: str) -> bool:
            return tag in tags.tags(i)
    else:
        fields = run.fields_harness()
        fields.fail_record(bad)
        stage = run.field_name("stage")
        await connector.prepare_push({stage: ["new"]})
        changes = [PushChange(external_id=i, set_fields={stage: "new"}) for i in ids]

        def landed(i: str) -> bool:
            return fields.field_values(i).get(stage) == "new"

    outcomes = await _push(connector, changes)
    _all_ok({i: outcomes[i] for i in good}, "the records the tool accepts")
    failed = outcomes[bad]
    check(
        failed.status in (PushStatus.FAILED, PushStatus.RETRY),
        f"the refused record {bad} came back {failed.status.value}",
    )
    check(bool(failed.reason), f"the refused record {bad} has no reason")
    not_landed = [i for i in good if not landed(i)]
    check(not not_landed, f"outcome ok but the tool does not show the change on {not_landed}")


# -- resilience -------------------------------------------------------------------------------


async def pacing(run: ContractRun) -> None:
    """Under a small rate limit, a burst of page requests is paced: it takes time and
    draws no 429 at all."""
    run.require(Capability.CONTACTS)
    plan = run.harness.limit_rate()
    check(plan.burst >= 1 and plan.per_second > 0, f"a rate-limit plan needs a limit: {plan}")
    pages = plan.burst + math.ceil(PACING_SECONDS * plan.per_second)
    ids = run.harness.add_contacts(pages * run.harness.page_size)
    connector = run.open(**dict(plan.settings))
    before = run.harness.throttled_count()
    started = time.monotonic()
    pulled = await pull_all(connector.pull_contacts(None))
    elapsed = time.monotonic() - started
    exactly(pulled, ids, "paced full pull")
    throttled = run.harness.throttled_count() - before
    check(throttled == 0, f"{throttled} request(s) were answered 429: the connector did not pace")
    floor = 0.5 * (pages - plan.burst) / plan.per_second
    check(
        elapsed >= floor,
        f"{pulled.pages} pages took {elapsed:.2f} s, under the {floor:.2f} s the planned limit "
        "allows: the harness's limit_rate did not limit the simulator",
    )


async def fault_recovery(run: ContractRun) -> None:
    """A 5xx, a 429 and a malformed body, one on each page request, are retried and the
    pull still returns everything exactly once."""
    run.require(Capability.CONTACTS)
    ids = run.harness.add_contacts(2 * run.harness.page_size + 1)
    await pull_through_faults(run, ids, lambda connector: connector.pull_contacts(None))


async def auth_failure(run: ContractRun) -> None:
    """Refused credentials raise ``AuthError`` at once (no retries, no secret in the
    message), from pulls and from pushes alike."""
    run.require(Capability.CONTACTS)
    ids = run.harness.add_contacts(3)
    faults = run.harness.faults
    connector = run.open()
    secrets = run.secrets()

    async def refused(action: Callable[[], Awaitable[object]], what: str) -> None:
        faults.clear()
        before = len(faults.applied)
        retries = connector.http.stats.retries
        faults.inject(Fault.EXPIRED_TOKEN, times=5)
        try:
            await action()
        except AuthError as exc:
            leaked = [s[:4] + "..." for s in secrets if s in str(exc)]
            check(not leaked, f"{what}: the AuthError message shows secrets {leaked}")
        else:
            raise ContractViolation(f"{what} with refused credentials did not raise AuthError")
        finally:
            faults.clear()
        sent = len(faults.applied) - before
        # One more request is fine: an OAuth client may refresh its token once.
        check(sent <= 2, f"{what}: {sent} requests with refused credentials (a retry storm)")
        extra = connector.http.stats.retries - retries
        check(extra == 0, f"{what}: AuthError was retried {extra} time(s)")

    await refused(lambda: pull_all(connector.pull_contacts(None)), "a pull")
    if Capability.TAG_PUSH in run.capabilities:
        tag = frozenset({f"{run.prefix}:stage:new"})
        change = PushChange(external_id=ids[0], add_tags=tag)
    elif Capability.FIELD_PUSH in run.capabilities:
        stage = run.field_name("stage")
        await connector.prepare_push({stage: ["new"]})
        change = PushChange(external_id=ids[0], set_fields={stage: "new"})
    else:
        return
    await refused(lambda: connector.push([change]), "a push")


SCENARIOS: Mapping[str, Scenario] = {
    "full_pull": full_pull,
    "orders_full_pull": orders_full_pull,
    "incremental_pull": incremental_pull,
    "pagination_boundaries": pagination_boundaries,
    "push_tags": push_tags,
    "push_fields": push_fields,
    "partial_failure": partial_failure,
    "pacing": pacing,
    "fault_recovery": fault_recovery,
    "auth_failure": auth_failure,
    **SURVEY_SCENARIOS,
}


async def _run(scenario: Scenario, harness: ConnectorHarness, base_url: str) -> None:
    async with ContractRun(harness, base_url) as run:
        try:
            await scenario(run)
        except ConnectorError as exc:
            name = getattr(scenario, "__name__", "scenario")
            raise ContractViolation(
                f"{name}: the connector gave up with {type(exc).__name__}: {exc}"
            ) from exc


def run_scenario(
    scenario: Scenario, harness: ConnectorHarness, *, server: LoopbackServer | None = None
) -> None:
    """Run one scenario against ``harness``'s simulator over real HTTP (its own server
    unless a shared ``server`` is given). Raises ``ContractViolation`` or ``ScenarioSkipped``."""
    serving: AbstractContextManager[str] = (
        server.serving(harness.app()) if server is not None else serve(harness.app())
    )
    with serving as base_url:
        asyncio.run(_run(scenario, harness, base_url))


class ConnectorContract:
    """Base class of a plugin's contract tests: set ``harness`` in a ``Test*`` subclass.

    Needs nothing but pytest (no asyncio plugin): every test runs its scenario in its own
    event loop, against a fresh harness, on one loopback server shared by the class.
    """

    harness: ClassVar[Callable[[], ConnectorHarness]]
    _server: ClassVar[LoopbackServer | None] = None

    @classmethod
    def setup_class(cls) -> None:
        cls._server = LoopbackServer()

    @classmethod
    def teardown_class(cls) -> None:
        if cls._server is not None:
            cls._server.stop()
        cls._server = None

    def _scenario(self, scenario: Scenario) -> None:
        cls = type(self)
        try:
            run_scenario(scenario, cls.harness(), server=cls._server)
        except ScenarioSkipped as exc:
            import pytest  # only ever reached under pytest; not a runtime dependency

            pytest.skip(str(exc))

    def test_full_pull_returns_every_contact_once(self) -> None:
        self._scenario(full_pull)

    def test_full_pull_of_orders_returns_every_order_once(self) -> None:
        self._scenario(orders_full_pull)

    def test_incremental_pull_returns_the_changed_contact_only(self) -> None:
        self._scenario(incremental_pull)

    def test_page_boundaries_lose_and_repeat_nothing(self) -> None:
        self._scenario(pagination_boundaries)

    def test_tag_push_changes_owned_tags_only(self) -> None:
        self._scenario(push_tags)

    def test_field_push_sets_and_clears_owned_fields(self) -> None:
        self._scenario(push_fields)

    def test_push_gives_per_record_outcomes_when_one_record_fails(self) -> None:
        self._scenario(partial_failure)

    def test_burst_is_paced_without_429s(self) -> None:
        self._scenario(pacing)

    def test_5xx_429_and_malformed_answers_are_retried(self) -> None:
        self._scenario(fault_recovery)

    def test_refused_credentials_raise_auth_error_without_retries(self) -> None:
        self._scenario(auth_failure)

    def test_full_pull_returns_every_survey_response_once(self) -> None:
        self._scenario(responses_full_pull)

    def test_incremental_pull_returns_the_new_survey_response_only(self) -> None:
        self._scenario(responses_incremental_pull)

    def test_survey_page_boundaries_lose_and_repeat_nothing(self) -> None:
        self._scenario(responses_page_boundaries)

    def test_survey_burst_is_paced_without_429s(self) -> None:
        self._scenario(responses_pacing)

    def test_survey_faults_are_retried(self) -> None:
        self._scenario(responses_fault_recovery)

    def test_survey_refused_credentials_raise_auth_error_without_retries(self) -> None:
        self._scenario(responses_auth_failure)
