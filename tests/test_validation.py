"""The intake's validators: a value, or a catalogue text the firm reads."""

from __future__ import annotations

import pytest

from bot.messages import Text
from bot.services.validation import (
    DESCRIPTION_MAX,
    Invalid,
    parse_company_name,
    parse_description,
    parse_email,
    parse_phone,
    parse_siret,
)


def _reason(value: object) -> str:
    assert isinstance(value, Invalid), value
    assert isinstance(value.reason, Text)
    return value.reason.plain()


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("1234", "Un SIRET compte 14 chiffres ; j'en lis 4."),
        ("7", "Un SIRET compte 14 chiffres ; je n'en lis qu'un."),
        ("732 829 320", "Ce numéro à 9 chiffres est un SIREN."),
        ("73282932000075", "la clé de contrôle ne correspond pas"),
        ("7328293200007A", "Un SIRET ne contient que des chiffres."),
    ],
)
def test_siret_reasons(typed: str, expected: str) -> None:
    """Each refused SIRET says what is wrong, with the count in words when it is one."""
    assert expected in _reason(parse_siret(typed))


def test_valid_values_are_normalised() -> None:
    """Accepted answers come back cleaned, not as reasons."""
    assert parse_siret("732 829 320 00074") == "73282932000074"
    assert parse_phone("06 12 34 56 78") == "+33612345678"
    assert parse_email("Nom@Entreprise.fr") == "Nom@entreprise.fr"
    assert parse_company_name("  Fonderie   du Charolais ") == "Fonderie du Charolais"


def test_description_reasons() -> None:
    """Too short shows the count (never « 1 caractères »); too long shows count and limit."""
    assert "(10 caractères)" in _reason(parse_description("trop court"))
    one = _reason(parse_description("x"))
    assert "caractères)" not in one and "20 caractères au moins" in one
    long = _reason(parse_description("a" * (DESCRIPTION_MAX + 1)))
    assert f"{DESCRIPTION_MAX + 1} caractères" in long and f"{DESCRIPTION_MAX}." in long


def test_other_reasons() -> None:
    """Name, phone and email reasons are the catalogue's sentences."""
    assert _reason(parse_company_name("-")).startswith("Ce nom ne semble pas valide.")
    assert _reason(parse_phone("12")).startswith("Ce numéro ne semble pas valide.")
    assert _reason(parse_email("nom@")).startswith("Cette adresse e-mail ne semble pas")
