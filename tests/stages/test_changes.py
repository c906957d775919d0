"""The ``stage_changes`` hook: plugins hear every stage change, at least once."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from sqlalchemy import Engine, delete

from clm_hub import hookimpl
from clm_hub.cursors import cursor_t
from clm_hub.lifecycle import StageCatchUp
from clm_hub.plugins import build_plugin_registry
from clm_hub.stages import StageRules
from clm_hub.stages.changes import StageChange, hook_notifier

from .conftest import Shop, at


class Listener:
    def __init__(self) -> None:
        self.heard: list[StageChange] = []

    @hookimpl
    def stage_changes(self, changes: Sequence[StageChange]) -> None:
        self.heard.extend(changes)


class Broken:
    @hookimpl
    def stage_changes(self, changes: Sequence[StageChange]) -> None:
        raise RuntimeError("the notification service is down")


@pytest.fixture
def fresh(store: Engine) -> Engine:
    """The store without cursors: no stage watermark, no delivery mark."""
    with store.begin() as connection:
        connection.execute(delete(cursor_t))
    return store


def catch_up(engine: Engine, rules: StageRules, day: float, **plugins: object) -> StageCatchUp:
    registry = build_plugin_registry(entry_points=False, extra=plugins)
    notify = hook_notifier(registry.manager)
    return StageCatchUp(engine, rules, now=lambda: at(day), notify=notify)


def test_every_stage_change_reaches_the_plugins_once(
    fresh: Engine, shop: Shop, rules: StageRules
) -> None:
    listener = Listener()
    one, two = shop.buyer(0, email="one@shop.test"), shop.buyer(0, 20)
    prospect = shop.customer("p@shop.test")
    catch_up(fresh, rules, 25, listener=listener)(set())
    first = {(c.customer_id, c.from_stage, c.to_stage) for c in listener.heard}
    assert first == {(one, None, "new"), (two, None, "loyal"), (prospect, None, "prospect")}
    emails = {c.customer_id: c.email for c in listener.heard}
    assert (emails[one], emails[prospect]) == ("one@shop.test", "p@shop.test")
    assert all(c.reason for c in listener.heard)  # the rule and numbers that decided

    listener.heard.clear()
    shop.order(prospect, 26)
    catch_up(fresh, rules, 27, listener=listener)({prospect})
    assert [(c.customer_id, c.from_stage, c.to_stage) for c in listener.heard] == [
        (prospect, "prospect", "new")
    ]

    listener.heard.clear()
    catch_up(fresh, rules, 27, listener=listener)(set())  # nothing changed: nothing to hear
    assert listener.heard == []


def test_a_failing_plugin_does_not_keep_the_others_from_hearing(
    fresh: Engine, shop: Shop, rules: StageRules
) -> None:
    listener = Listener()
    customer = shop.buyer(0)
    catch_up(fresh, rules, 5, broken=Broken(), listener=listener)(set())
    assert [c.customer_id for c in listener.heard] == [customer]


def test_changes_not_delivered_before_a_crash_come_with_the_next_step(
    fresh: Engine, shop: Shop, rules: StageRules
) -> None:
    first = shop.buyer(0)

    def crash(changes: Sequence[StageChange]) -> None:
        raise KeyboardInterrupt  # the process dies between the stage step and delivery

    with pytest.raises(KeyboardInterrupt):
        StageCatchUp(fresh, rules, now=lambda: at(5), notify=crash)(set())
    second = shop.buyer(6)
    listener = Listener()
    catch_up(fresh, rules, 7, listener=listener)({second})
    assert [c.customer_id for c in listener.heard] == [first, second]
    ids = [c.id for c in listener.heard]
    assert ids == sorted(set(ids))


def test_history_from_before_any_listener_is_not_replayed(
    fresh: Engine, shop: Shop, rules: StageRules
) -> None:
    shop.buyer(0)
    StageCatchUp(fresh, rules, now=lambda: at(5))(set())  # no plugin listens yet
    later = shop.buyer(6)
    listener = Listener()
    catch_up(fresh, rules, 7, listener=listener)({later})
    assert [c.customer_id for c in listener.heard] == [later]


def test_no_listener_means_no_delivery_work() -> None:
    registry = build_plugin_registry(entry_points=False)
    assert hook_notifier(registry.manager) is None
