"""Write-back: the stage and segment tags (or fields) each tool should show, pushed as
the smallest change from what was last pushed, paced by the tool's limits."""

from clm_hub.push.mapping import Desired, PushMapping, desired_state
from clm_hub.push.planner import PlannedChange, PushPlan, plan_push

__all__ = ["Desired", "PlannedChange", "PushMapping", "PushPlan", "desired_state", "plan_push"]
