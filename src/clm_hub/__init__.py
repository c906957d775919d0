"""clm-hub: pull customers from every tool, compute one lifecycle stage, push it back.

The public API for plugin authors is re-exported here and in ``clm_hub.connectors``.
"""

from clm_hub.connectors.base import (
    Capability,
    Connector,
    ConnectorSettings,
    RegisterConnector,
    WebhookEvent,
    WebhookRequest,
)
from clm_hub.hookspecs import hookimpl
from clm_hub.records import (
    ContactRecord,
    OrderRecord,
    OrderStatus,
    Page,
    PushChange,
    PushOutcome,
    PushStatus,
    Rejection,
    StreamCursor,
    SurveyResponseRecord,
    parse_page,
)

__version__ = "0.1.0"

__all__ = [
    "Capability",
    "Connector",
    "ConnectorSettings",
    "ContactRecord",
    "OrderRecord",
    "OrderStatus",
    "Page",
    "PushChange",
    "PushOutcome",
    "PushStatus",
    "RegisterConnector",
    "Rejection",
    "StreamCursor",
    "SurveyResponseRecord",
    "WebhookEvent",
    "WebhookRequest",
    "__version__",
    "hookimpl",
    "parse_page",
]
