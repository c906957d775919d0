"""Normalising join keys and survivorship: pure functions, no store."""

from __future__ import annotations

from datetime import UTC, datetime

import phonenumbers
import pytest

from clm_hub.identity import (
    IdentityRules,
    LinkedRecord,
    UnionFind,
    normalise_email,
    normalise_phone,
    survivor_fields,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Ann.Lee@Example.COM ", "ann.lee@example.com"),
        ("\uff21\uff2e\uff2e@example.com", "ann@example.com"),  # full-width letters, NFKC
        ("STRASSE@EXAMPLE.COM", "strasse@example.com"),
        ("no-at-sign", None),
        ("a@localhost", None),
        ("", None),
        (None, None),
    ],
)
def test_normalise_email(raw: str | None, expected: str | None) -> None:
    assert normalise_email(raw) == expected


def test_gmail_dots_and_plus_tags_only_when_configured() -> None:
    raw = "J.Doe+shop@googlemail.com"
    assert normalise_email(raw) == "j.doe+shop@googlemail.com"
    rules = IdentityRules(gmail_dots=True, strip_plus_tags=True)
    assert normalise_email(raw, rules) == "jdoe@gmail.com"
    assert normalise_email("j.doe@example.com", rules) == "j.doe@example.com"


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+1 (415) 555-2671", None, "+14155552671"),
        ("(415) 555-2671", "US", "+14155552671"),
        ("(415) 555-2671", None, None),  # no country code and no region: not guessed
        ("0151 23456789", "DE", "+4915123456789"),
        ("12", "US", None),
        ("   ", "US", None),
    ],
)
def test_normalise_phone(raw: str, region: str | None, expected: str | None) -> None:
    assert normalise_phone(raw, region) == expected


PHONES = [
    ("+1 415 555 0123", None), ("+1 (415) 555-0123", None), ("+14155550123", None),
    ("(415) 555-0123", "US"), ("415.555.0123", "US"), ("4155550123", None),
    ("+44 (0) 20 7946 0958", None), ("+49 30 901820", None), ("030 901820", "DE"),
    ("+1 415 555 0123 ext. 7", None), ("1-800-FLOWERS", "US"), ("+1 555", None), ("+", None),
    ("12345678901234567890123", None), ("+1 415 555 0123 ", None),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "region"), PHONES)
def test_normalise_phone_agrees_with_phonenumbers_on_the_raw_text(
    raw: str, region: str | None
) -> None:
    """The cached, separator-free lookup gives what parsing the raw text gives."""
    try:
        number = phonenumbers.parse(raw, region)
        valid = phonenumbers.is_valid_number(number)
    except phonenumbers.NumberParseException:
        valid = False
    expected = (
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) if valid else None
    )
    assert normalise_phone(raw, region) == expected
    assert normalise_phone(raw, region) == expected  # the cached answer too


def test_formatting_of_a_phone_does_not_change_its_key() -> None:
    variants = {"+1 415 555 0123", "+1 (415) 555-0123", "+1.415.555.0123", "+14155550123"}
    assert {normalise_phone(v) for v in variants} == {"+14155550123"}


def test_role_addresses_are_recognised() -> None:
    rules = IdentityRules()
    assert rules.is_role_address("info@shop.com")
    assert not rules.is_role_address("ann@shop.com")


def test_union_find_groups() -> None:
    sets: UnionFind[int] = UnionFind()
    sets.union(1, 2)
    sets.union(3, 4)
    sets.union(2, 4)
    sets.add(5)
    assert sorted(sorted(g) for g in sets.groups()) == [[1, 2, 3, 4], [5]]


def record(source: str, day: int, **fields: object) -> LinkedRecord:
    base: dict[str, object] = dict.fromkeys(
        ("email", "phone", "first_name", "last_name", "marketing_consent", "acquisition_channel")
    )
    base.update(fields)
    stamp = datetime(2026, 1, day, tzinfo=UTC)
    return LinkedRecord(source=source, updated_at=stamp, created_at=stamp, **base)  # type: ignore[arg-type]


def test_survivorship_takes_the_newest_non_empty_value() -> None:
    fields = survivor_fields(
        [
            record("shop", 1, first_name="Ann", phone="+14155552671"),
            record("crm", 5, first_name="Anne", phone=None),
        ]
    )
    assert fields["first_name"] == "Anne"
    assert fields["phone"] == "+14155552671"


def test_source_priority_beats_recency() -> None:
    records = [record("shop", 1, first_name="Ann"), record("crm", 5, first_name="Anne")]
    assert survivor_fields(records, ["shop"])["first_name"] == "Ann"
