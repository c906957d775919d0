"""The Typeform connector's settings: auth and host, which forms, how to find NPS and people."""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, SecretStr, StringConstraints, model_validator

from clm_hub import ConnectorSettings

__all__ = ["DEFAULT_BASE_URL", "REGION_HOSTS", "FormId", "Region", "TypeformSettings"]

FormId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Ref = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
_HIDDEN_NAME = re.compile(r"^[A-Za-z0-9_]{1,100}$")


class Region(StrEnum):
    """The Typeform data centre holding the account; a wrong host fails with 401/404."""

    US = "us"
    """``api.typeform.com``: every account not created in the EU data centre."""
    EU = "eu"
    """``api.eu.typeform.com``: EU data-centre accounts onboarded before August 2025."""
    EU_2025 = "eu-2025"
    """``api.typeform.eu``: EU data-centre accounts onboarded from August 2025 on."""


REGION_HOSTS: Mapping[Region, str] = {
    Region.US: "https://api.typeform.com",
    Region.EU: "https://api.eu.typeform.com",
    Region.EU_2025: "https://api.typeform.eu",
}
DEFAULT_BASE_URL = REGION_HOSTS[Region.US]


class TypeformSettings(ConnectorSettings):
    """Settings of one Typeform account connection."""

    # -- auth and host --------------------------------------------------------------------
    token: SecretStr
    """Personal access token (``tfp_...``) with ``forms:read responses:read``; erasure also
    needs ``responses:write``. Or ``token_file``."""
    region: Region = Region.US
    """Which host serves the account; ``base_url`` (a proxy, the simulator) overrides it."""
    webhook_secret: SecretStr | None = None
    """The ``secret`` given when registering the webhook; deliveries are refused without it."""

    # -- what to read ---------------------------------------------------------------------
    forms: tuple[FormId, ...] | Literal["all"] = "all"
    """Form ids to read, or ``"all"``: every form of the account that has an NPS question
    (forms without one are skipped; a listed form without one is a configuration error)."""
    nps_ref: Ref | None = None
    """``ref`` of the NPS question (stable, set by the form's author). Unset: the form's one
    question of type ``nps``."""
    rescale_other_scales: bool = False
    """Accept a matched question that is not a 0-10 scale (an opinion scale of other steps,
    a star rating) by mapping its range linearly onto 0-10. Off: such a form is refused, as
    promoter/passive/detractor classes are defined for 0-10 answers only."""
    hidden_email: Annotated[str, StringConstraints(pattern=_HIDDEN_NAME.pattern)] | None = "email"
    """Hidden field carrying the respondent's email (filled from the share link)."""
    hidden_customer_id: Annotated[str, StringConstraints(pattern=_HIDDEN_NAME.pattern)] | None = (
        "customer_id"
    )
    """Hidden field carrying the respondent's customer id (opaque, preferred to email)."""
    email_answer: bool = True
    """Fall back to the respondent's answer to an email question when no hidden email."""
    email_answer_ref: Ref | None = None
    """Only this email question counts as the respondent's address (unset: the first one)."""
    comment_ref: Ref | None = None
    """``ref`` of a text question whose answer is kept as the NPS comment."""

    # -- paging and pacing ----------------------------------------------------------------
    page_size: Annotated[int, Field(ge=1, le=1000)] = 1000
    """Responses per request; Typeform's maximum is 1000."""
    forms_page_size: Annotated[int, Field(ge=1, le=200)] = 200
    """Forms per request of the form list (``forms = "all"``); the maximum is 200."""
    overlap_minutes: Annotated[float, Field(ge=0)] = 30.0
    """Each form is re-read from this long before the newest answer seen: responses from
    roughly the last 30 minutes may not be returned yet (unconfirmed, see README)."""
    requests_per_second: Annotated[int, Field(ge=1)] = 2
    """Typeform allows 2 requests per second per account (Create and Responses APIs)."""
    timeout_seconds: Annotated[float, Field(gt=0)] = 30.0

    @model_validator(mode="after")
    def _check(self) -> TypeformSettings:
        if self.forms != "all" and not self.forms:
            raise ValueError('forms needs at least one form id, or "all"')
        if self.forms != "all" and len(set(self.forms)) != len(self.forms):
            raise ValueError("forms lists a form id twice")
        if self.hidden_email is None and self.hidden_customer_id is None and not self.email_answer:
            raise ValueError(
                "no way to tell who answered: set hidden_email, hidden_customer_id or "
                "email_answer = true"
            )
        return self

    @property
    def host(self) -> str:
        """The API base URL: ``base_url`` when set, else the region's host."""
        return (self.base_url or REGION_HOSTS[self.region]).rstrip("/")
