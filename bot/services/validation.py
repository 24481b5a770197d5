"""Validators and normalisers for what firms type: each returns a value or why it is refused."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from stdnum.fr import siret as stdnum_siret

from bot.catalogue import t
from bot.messages import Text

__all__ = [
    "DESCRIPTION_MAX",
    "DESCRIPTION_MIN",
    "Invalid",
    "clean_text",
    "parse_company_name",
    "parse_description",
    "parse_email",
    "parse_phone",
    "parse_siret",
    "telegram_length",
]

DESCRIPTION_MIN = 20
DESCRIPTION_MAX = 2000


@dataclass(frozen=True, slots=True)
class Invalid:
    """A refused answer and why, as the firm reads it (a catalogue text)."""

    reason: Text


def clean_text(value: str) -> str:
    """Drop control and format characters (except new lines) and trim each end."""
    kept = [
        ch for ch in value
        if ch in "\n\t" or unicodedata.category(ch) not in {"Cc", "Cf", "Cs", "Co"}
    ]
    return "".join(kept).strip()


def parse_company_name(value: str) -> str | Invalid:
    """A firm name: 2 to 120 characters on one line, with at least one letter or digit."""
    name = re.sub(r"\s+", " ", clean_text(value))
    if not 2 <= len(name) <= 120 or not any(ch.isalnum() for ch in name):
        return Invalid(t("firm.bad_company_name"))
    return name


def parse_siret(value: str) -> str | Invalid:
    """A SIRET with a valid check digit (python-stdnum), spaces and dots allowed."""
    compact = re.sub(r"[\s.\-]", "", value)
    if not compact.isdigit():
        return Invalid(t("firm.bad_siret_chars"))
    if len(compact) == 9:
        return Invalid(t("firm.bad_siren_given"))
    if len(compact) != 14:
        return Invalid(t("firm.bad_siret_length_one") if len(compact) == 1
                       else t("firm.bad_siret_length", count=len(compact)))
    if not stdnum_siret.is_valid(compact):
        return Invalid(t("firm.bad_siret_checksum"))
    return compact


def telegram_length(text: str) -> int:
    """The length Telegram counts (UTF-16 code units): most emoji count as two characters."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def parse_description(value: str) -> str | Invalid:
    """A free-text description between DESCRIPTION_MIN and DESCRIPTION_MAX characters.

    The maximum is counted as Telegram counts (`telegram_length`), so that the summary that
    shows the description always fits in one message (4,096 UTF-16 code units).
    """
    text = clean_text(value)
    if len(text) < DESCRIPTION_MIN:
        return Invalid(t("firm.description_too_short_one", minimum=DESCRIPTION_MIN)
                       if len(text) <= 1 else
                       t("firm.description_too_short", count=len(text), minimum=DESCRIPTION_MIN))
    size = telegram_length(text)
    if size > DESCRIPTION_MAX:
        return Invalid(t("firm.description_too_long", count=size, limit=DESCRIPTION_MAX))
    return text


def parse_phone(value: str) -> str | Invalid:
    """A phone number valid in France (or international with +), normalised to E.164."""
    try:
        number = phonenumbers.parse(clean_text(value), "FR")
    except phonenumbers.NumberParseException:
        return Invalid(t("firm.bad_phone"))
    if not phonenumbers.is_valid_number(number):
        return Invalid(t("firm.bad_phone"))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_email(value: str) -> str | Invalid:
    """An email address with valid syntax (no DNS lookup: the tests run offline)."""
    try:
        result = validate_email(clean_text(value), check_deliverability=False)
    except EmailNotValidError:
        return Invalid(t("firm.bad_email"))
    return result.normalized


def format_phone(e164: str) -> str:
    """Show an E.164 number the way French people write it."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    fmt = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if number.country_code == 33
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return phonenumbers.format_number(number, fmt)
