"""Validators and normalisers for what firms type: each returns a value or a French reason."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from stdnum.fr import siret as stdnum_siret

from bot import texts

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
    """A refused answer and the French sentence explaining why."""

    reason: str


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
        return Invalid(texts.BAD_COMPANY_NAME)
    return name


def parse_siret(value: str) -> str | Invalid:
    """A SIRET with a valid check digit (python-stdnum), spaces and dots allowed."""
    compact = re.sub(r"[\s.\-]", "", value)
    if not compact.isdigit():
        return Invalid(texts.BAD_SIRET_CHARS)
    if len(compact) == 9:
        return Invalid(texts.BAD_SIREN_GIVEN)
    if len(compact) != 14:
        return Invalid(texts.BAD_SIRET_LENGTH.format(count=len(compact)))
    if not stdnum_siret.is_valid(compact):
        return Invalid(texts.BAD_SIRET_CHECKSUM)
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
        return Invalid(texts.DESCRIPTION_TOO_SHORT.format(count=len(text)))
    size = telegram_length(text)
    if size > DESCRIPTION_MAX:
        return Invalid(texts.DESCRIPTION_TOO_LONG.format(count=size, limit=DESCRIPTION_MAX))
    return text


def parse_phone(value: str) -> str | Invalid:
    """A phone number valid in France (or international with +), normalised to E.164."""
    try:
        number = phonenumbers.parse(clean_text(value), "FR")
    except phonenumbers.NumberParseException:
        return Invalid(texts.BAD_PHONE)
    if not phonenumbers.is_valid_number(number):
        return Invalid(texts.BAD_PHONE)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_email(value: str) -> str | Invalid:
    """An email address with valid syntax (no DNS lookup: the tests run offline)."""
    try:
        result = validate_email(clean_text(value), check_deliverability=False)
    except EmailNotValidError:
        return Invalid(texts.BAD_EMAIL)
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
