"""Writing the hub's properties into the simulator over real HTTP."""

from __future__ import annotations

import pytest

from clm_hub import PushChange, PushStatus
from clm_hub.errors import ConfigError
from clm_hub_plugins.hubspot import HubSpot
from clm_hub_plugins.hubspot.simstate import HubSpotState

from .conftest import Factory

STAGES = ["prospect", "new_customer", "loyal", "vip", "at_risk", "lapsed"]
SEGMENTS = ["champions", "at_risk", "hibernating"]
LIFECYCLE = {
    "lifecyclestage_map": {"prospect": "lead", "new_customer": "customer", "vip": "evangelist"}
}


async def ready(hubspot: HubSpot) -> HubSpot:
    await hubspot.ensure_properties(stages=STAGES, segments=SEGMENTS)
    return hubspot


def stage(external_id: str, value: str | None) -> PushChange:
    return PushChange(external_id=external_id, set_fields={"clm_stage": value})


async def test_push_with_an_unknown_contact_gives_per_record_outcomes(
    state: HubSpotState, sim: Factory
) -> None:
    ann = state.add_contact("ann@example.com")
    hubspot = await ready(sim())
    outcomes = await hubspot.push(
        [
            PushChange(
                external_id=ann, set_fields={"clm_stage": "vip", "clm_segment": "champions;at_risk"}
            ),
            stage("424242", "vip"),
        ]
    )
    assert [(o.external_id, o.status) for o in outcomes] == [
        (ann, PushStatus.OK),
        ("424242", PushStatus.FAILED),
    ]
    assert (outcomes[1].reason or "").startswith("OBJECT_NOT_FOUND")
    assert state.calls("/crm/v3/objects/contacts/batch/update")[-1].status == 207
    assert state.contact(ann).properties["clm_segment"] == "champions;at_risk"


async def test_value_hubspot_rejects_per_record_in_a_207_fails_only_that_record(
    state: HubSpotState, sim: Factory
) -> None:
    state.invalid_option_rejects_batch = False
    ann, bob = state.add_contact("ann@example.com"), state.add_contact("bob@example.com")
    hubspot = await ready(sim())
    await hubspot.push([stage(ann, "vip")])  # the connector now knows the options
    state.properties["clm_stage"].options = [
        o for o in state.properties["clm_stage"].options if o.value != "lapsed"
    ]
    outcomes = await hubspot.push([stage(ann, "loyal"), stage(bob, "lapsed")])
    assert [o.status for o in outcomes] == [PushStatus.OK, PushStatus.FAILED]
    assert (outcomes[1].reason or "").startswith("VALIDATION_ERROR: lapsed was not one of")


async def test_batch_rejected_as_a_whole_is_split_so_the_good_records_land(
    state: HubSpotState, sim: Factory
) -> None:
    ids = [state.add_contact(f"p{i}@example.com") for i in range(5)]
    hubspot = await ready(sim())
    await hubspot.push([stage(ids[0], "vip")])  # caches the options HubSpot had then
    # Someone deletes an option in HubSpot's UI; HubSpot now fails any batch using it.
    state.properties["clm_stage"].options = [
        o for o in state.properties["clm_stage"].options if o.value != "lapsed"
    ]
    changes = [stage(i, "loyal") for i in ids[:4]] + [stage(ids[4], "lapsed")]
    outcomes = await hubspot.push(changes)
    assert [o.status for o in outcomes] == [PushStatus.OK] * 4 + [PushStatus.FAILED]
    assert "INVALID_OPTION" in (outcomes[4].reason or "")
    assert [state.contact(i).properties["clm_stage"] for i in ids[:4]] == ["loyal"] * 4


async def test_ensure_properties_is_idempotent_and_adds_new_stages_later(
    state: HubSpotState, sim: Factory
) -> None:
    hubspot = sim()
    first = await hubspot.ensure_properties(stages=STAGES, segments=SEGMENTS)
    again = await hubspot.ensure_properties(stages=STAGES, segments=SEGMENTS)
    more = await hubspot.ensure_properties(stages=[*STAGES, "reactivated"], segments=SEGMENTS)
    assert [r.action for r in first] == ["created"] * 3
    assert [r.action for r in again] == ["unchanged"] * 3
    assert (more[0].action, more[0].added_options) == ("updated", ("reactivated",))
    assert state.properties["clm_stage"].option_values == [*STAGES, "reactivated"]
    assert state.properties["clm_segment"].field_type == "checkbox"
    assert state.groups["clm_hub"] == "Lifecycle hub"


async def test_prepare_push_creates_what_the_write_back_engine_announces(
    state: HubSpotState, sim: Factory
) -> None:
    ann = state.add_contact("ann@example.com")
    hubspot = sim()
    # As the hub calls it: default field names <prefix>_stage/_segment/_nps, values split on ";".
    await hubspot.prepare_push({"clm_stage": ["vip"], "clm_segment": ["at-risk", "champions"]})
    await hubspot.prepare_push({"clm_stage": ["lapsed", "vip"], "clm_nps": ["promoter"]})
    assert state.properties["clm_stage"].option_values == ["vip", "lapsed"]
    assert state.properties["clm_segment"].field_type == "checkbox"
    assert state.properties["clm_nps"].option_values == ["promoter"]
    [outcome] = await hubspot.push(
        [PushChange(external_id=ann, set_fields={"clm_segment": "at-risk;champions"})]
    )
    assert outcome.status is PushStatus.OK


async def test_ensure_properties_refuses_a_lifecyclestage_target_the_portal_lacks(
    sim: Factory,
) -> None:
    hubspot = sim(lifecyclestage_sync="forward_only", lifecyclestage_map={"vip": "champion"})
    with pytest.raises(ConfigError, match="champion"):
        await hubspot.ensure_properties(stages=STAGES, segments=SEGMENTS)


async def test_lifecyclestage_moves_forward_but_never_back_by_default(
    state: HubSpotState, sim: Factory
) -> None:
    new = state.add_contact("new@example.com", properties={"lifecyclestage": "lead"})
    fan = state.add_contact("fan@example.com", properties={"lifecyclestage": "evangelist"})
    hubspot = await ready(sim(lifecyclestage_sync="forward_only", **LIFECYCLE))
    outcomes = await hubspot.push([stage(new, "new_customer"), stage(fan, "new_customer")])
    assert [o.status for o in outcomes] == [PushStatus.OK, PushStatus.OK]
    assert state.contact(new).properties["lifecyclestage"] == "customer"
    assert state.contact(fan).properties["lifecyclestage"] == "evangelist"
    assert state.contact(fan).properties["clm_stage"] == "new_customer"


async def test_lifecyclestage_moves_back_when_allowed_by_clearing_it_first(
    state: HubSpotState, sim: Factory
) -> None:
    fan = state.add_contact("fan@example.com", properties={"lifecyclestage": "evangelist"})
    hubspot = await ready(sim(lifecyclestage_sync="allow_backward", **LIFECYCLE))
    [outcome] = await hubspot.push([stage(fan, "new_customer")])
    assert outcome.status is PushStatus.OK
    assert state.contact(fan).properties["lifecyclestage"] == "customer"
    updates = state.calls("/crm/v3/objects/contacts/batch/update")
    assert [u.body.count(b'"lifecyclestage"') for u in updates] == [0, 1, 1]
    assert b'"lifecyclestage":""' in updates[1].body


async def test_erase_deletes_the_contact_for_good(state: HubSpotState, sim: Factory) -> None:
    ann = state.add_contact("ann@example.com")
    outcomes = await sim().erase([ann, "404404"])
    assert [o.status for o in outcomes] == [PushStatus.OK, PushStatus.OK]
    assert int(ann) not in state.objects["contacts"]
