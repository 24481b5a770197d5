"""Tests of knowledge.geography on the shipped communes table (real data)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from knowledge.geography import Commune, Geography, default_geography, normalize_name

PARAY = "71342"
GRAND_CHAROLAIS = "200071884"
REFERENCE_NAME = "territoires-industrie-2023.csv"


@pytest.fixture(scope="module")
def geo() -> Geography:
    """The shared, process-wide geography."""
    return default_geography()


def _insees(communes: tuple[Commune, ...] | list[Commune]) -> list[str]:
    """INSEE codes of communes, in order."""
    return [c.insee for c in communes]


def test_default_geography_is_cached(geo: Geography) -> None:
    """default_geography() returns one shared instance."""
    assert default_geography() is geo


def test_paray_le_monial_record(geo: Geography) -> None:
    """Paray-le-Monial carries its postcode, département, région and EPCI."""
    paray = geo.by_insee(PARAY)
    assert paray is not None
    assert paray.name == "Paray-le-Monial"
    assert paray.postcodes == ("71600",)
    assert (paray.departement, paray.region) == ("71", "27")
    assert paray.epci_siren == GRAND_CHAROLAIS
    assert paray.epci_name == "CC Le Grand Charolais"
    assert paray.label() == "Paray-le-Monial (71)"
    assert geo.epci_name(GRAND_CHAROLAIS) == "CC Le Grand Charolais"
    assert geo.departement_of(PARAY) == "71"


@pytest.mark.parametrize(
    "text",
    [
        "Paray-le-Monial",
        "paray le monial",
        "PARAY LE MONIAL",
        "  Paray  le   Monial ",
        "paray-le-monial",
        "Paray le Monial (71)",
        "Paray-le-Monial 71600",
        "71600 Paray-le-Monial",
        "parai le monial",
        "paray le monail",
        "paray-le-monnial",
    ],
)
def test_paray_by_name(geo: Geography, text: str) -> None:
    """Spellings, qualifiers and typos of Paray-le-Monial all find it."""
    result = geo.resolve(text)
    assert result.status == "found", result
    assert _insees(result.communes) == [PARAY]
    assert result.communes[0].epci_siren == GRAND_CHAROLAIS


def test_paray_postcode_is_shared(geo: Geography) -> None:
    """71600 serves Paray-le-Monial and its neighbours: ambiguous, sorted by name, complete."""
    for text in ("71600", "71 600"):
        result = geo.resolve(text)
        assert result.status == "ambiguous"
        assert PARAY in _insees(result.communes)
        assert len(result.communes) == len(geo.by_postcode("71600")) >= 5
        names = [normalize_name(c.name) for c in result.communes]
        assert names == sorted(names)
        assert all("71600" in c.postcodes for c in result.communes)


def test_single_commune_postcode(geo: Geography) -> None:
    """A postcode with one commune is found."""
    result = geo.resolve("21000")
    assert result.status == "found"
    assert result.communes[0].name == "Dijon"


def test_le_creusot_and_dijon(geo: Geography) -> None:
    """Le Creusot and Dijon map to their EPCI."""
    creusot = geo.resolve("Le Creusot")
    assert creusot.status == "found"
    assert creusot.communes[0].insee == "71153"
    assert creusot.communes[0].epci_siren == "247100290"
    assert geo.resolve("creusot").communes == creusot.communes
    dijon = geo.resolve("Dijon")
    assert dijon.status == "found"
    assert dijon.communes[0].epci_siren == "242100410"
    assert dijon.communes[0].epci_name == "Dijon Métropole"


def test_corsica(geo: Geography) -> None:
    """Corsican INSEE codes keep 2A/2B; postcodes 20xxx resolve."""
    ajaccio = geo.by_insee("2A004")
    assert ajaccio is not None and ajaccio.name == "Ajaccio"
    assert ajaccio.departement == "2A"
    assert geo.by_insee("2a004") == ajaccio
    assert geo.resolve("2A004").communes == (ajaccio,)
    assert geo.resolve("Ajaccio").communes == (ajaccio,)
    assert geo.resolve("20000").communes == (ajaccio,)
    bastia = geo.resolve("Bastia")
    assert bastia.status == "found"
    assert bastia.communes[0].insee == "2B033"
    assert bastia.communes[0].departement == "2B"
    shared = geo.resolve("20200")
    assert shared.status == "ambiguous"
    assert "2B033" in _insees(shared.communes)
    assert geo.departement_of("2B033") == "2B"


@pytest.mark.parametrize("postcode", ["75001", "75008", "75016", "75116", "75020"])
def test_paris_postcodes(geo: Geography, postcode: str) -> None:
    """Paris postcodes resolve to the commune of Paris in the Métropole du Grand Paris."""
    result = geo.resolve(postcode)
    assert result.status == "found"
    paris = result.communes[0]
    assert (paris.insee, paris.name, paris.departement) == ("75056", "Paris", "75")
    assert paris.epci_siren == "200054781"


def test_plm_arrondissements(geo: Geography) -> None:
    """Arrondissement codes are known with the parent's EPCI; names resolve to the city."""
    arm = geo.by_insee("75108")
    assert arm is not None
    assert arm.epci_siren == "200054781"
    assert arm.departement == "75"
    lyon3 = geo.by_insee("69383")
    assert lyon3 is not None and lyon3.epci_siren == "200046977"
    assert geo.resolve("69003").communes[0].insee == "69123"
    assert geo.resolve("Marseille 13008").communes[0].insee == "13055"
    assert geo.resolve("Paris 15e").communes[0].insee == "75056"
    assert "75108" not in _insees(geo.communes_of_epci("200054781"))


@pytest.mark.parametrize(
    ("text", "insee"),
    [
        ("monceau les mines", "71306"),
        ("Montceau les Mines", "71306"),
        ("Montceau 71300", "71306"),
        ("le creuzot", "71153"),
        ("chalon s/ saone", "71076"),
        ("Chalon sur Saone", "71076"),
        ("st etienne", "42218"),
        ("saint etiene", "42218"),
        ("ste foy les lyon", "69202"),
        ("clermon ferand", "63113"),
        ("besanson", "25056"),
        ("Macon", "71270"),
        ("l'isle adam", "95313"),
        ("L’Isle-Adam", "95313"),
        ("Beaune (21)", "21054"),
    ],
)
def test_typos_and_variants(geo: Geography, text: str, insee: str) -> None:
    """Accents, abbreviations, apostrophes and typos are tolerated."""
    result = geo.resolve(text)
    assert result.status == "found", result
    assert result.communes[0].insee == insee


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "xyzzy",
        "bonjour",
        "Bonjour !",
        "merci",
        "salut",
        "oui",
        "start",
        "😀",
        "🏭🏭",
        "2024",
    ],
)
def test_garbage_not_found(geo: Geography, text: str) -> None:
    """Greetings, noise and emoji match no commune."""
    result = geo.resolve(text)
    assert result.status == "not_found", result
    assert result.communes == ()


def test_unknown_codes(geo: Geography) -> None:
    """A 5-digit string that is neither a postcode nor an INSEE code is not found."""
    assert geo.resolve("00000").status == "not_found"
    assert geo.by_postcode("00000") == []
    assert geo.by_insee("99999") is None
    assert geo.departement_of("99999") is None
    assert geo.epci_name("000000000") is None
    assert geo.communes_of_epci("000000000") == []


def test_insee_code_fallback(geo: Geography) -> None:
    """A 5-digit INSEE code that is not a postcode finds its commune."""
    result = geo.resolve(PARAY)
    assert result.status == "found"
    assert result.communes[0].insee == PARAY


def test_homonyms_are_ambiguous(geo: Geography) -> None:
    """Saint-Martin names several communes: ambiguous, capped, by population."""
    result = geo.resolve("Saint-Martin", limit=8)
    assert result.status == "ambiguous"
    assert 2 <= len(result.communes) <= 8
    exact = [c for c in result.communes if c.name == "Saint-Martin"]
    assert {c.departement for c in exact} >= {"32", "54", "65", "67"}
    assert len(geo.resolve("Saint-Martin", limit=3).communes) == 3


def test_departement_disambiguates(geo: Geography) -> None:
    """A trailing département code picks one homonym."""
    for text in ("Saint-Martin 65", "Saint-Martin (65)", "saint martin, 65"):
        result = geo.resolve(text)
        assert result.status == "found", text
        assert result.communes[0].insee == "65392"
    torcy = geo.resolve("Torcy")
    assert torcy.status == "ambiguous"
    assert geo.resolve("Torcy 71").communes[0].insee == "71540"
    assert geo.resolve("Torcy 77").communes[0].insee == "77468"


def test_partial_name_offers_choices(geo: Geography) -> None:
    """A leading word offers the communes it starts, most populous first."""
    result = geo.resolve("Montceau")
    assert result.status == "ambiguous"
    assert result.communes[0].insee == "71306"
    chalon = geo.resolve("Chalon")
    assert chalon.status == "ambiguous"
    assert chalon.communes[0].insee == "71076"


def test_communes_of_epci(geo: Geography) -> None:
    """The Grand Charolais lists its member communes, Paray included, sorted by name."""
    members = geo.communes_of_epci(GRAND_CHAROLAIS)
    assert PARAY in _insees(members)
    assert len(members) > 30
    assert all(c.epci_siren == GRAND_CHAROLAIS for c in members)
    names = [normalize_name(c.name) for c in members]
    assert names == sorted(names)


def test_labels_are_short(geo: Geography) -> None:
    """Every label fits in 40 characters and ends with the département."""
    for text in ("Saint-Remy-en-Bouzemont-Saint-Genest-et-Isson", "Paris", "Y"):
        commune = geo.resolve(text).communes[0]
        label = commune.label()
        assert len(label) <= 40
        assert label.endswith(f"({commune.departement})")


def test_table_counts(geo: Geography) -> None:
    """The table holds all current communes plus the 45 PLM arrondissements."""
    assert 34_000 < len(geo) < 36_000
    assert geo.by_insee("97411") is not None  # Saint-Denis, La Réunion
    assert geo.departement_of("97411") == "974"


def _reference_file() -> Path | None:
    """The Territoires d'industrie reference list, when present on this machine."""
    candidates = [
        os.environ.get("RELAIS_TI_REFERENCE", ""),
        f"/work/shared/data/{REFERENCE_NAME}",
        str(Path(__file__).resolve().parents[2] / "shared" / "data" / REFERENCE_NAME),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def test_territoires_industrie_epci_are_known(geo: Geography) -> None:
    """At least 95% of the 2023 Territoires d'industrie groupings are EPCI of the table."""
    path = _reference_file()
    if path is None:
        pytest.skip(f"{REFERENCE_NAME} not available")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    sirens = {row["siren_groupement"]: row["lib_groupement"] for row in rows}
    assert len(sirens) == 641
    missing = {s: name for s, name in sirens.items() if geo.epci_name(s) is None}
    share = 1 - len(missing) / len(sirens)
    report = ", ".join(f"{s} {name}" for s, name in sorted(missing.items()))
    print(f"\n{len(missing)} of {len(sirens)} SIRENs not in the table: {report}")
    assert share >= 0.95, report


@pytest.mark.parametrize(
    ("text", "insee"),
    [
        ("Digion", "71176"),  # two letters swapped: Digoin
        ("Ayze", "74024"),  # Ayse, as it is said
        ("Le Creuzo", "71153"),
        ("Tyez", "74278"),
        ("Digion 71", "71176"),
    ],
)
def test_typos_are_suggested_when_asked(geo: Geography, text: str, insee: str) -> None:
    """One letter wrong, missing, added or swapped: the nearest names, to be confirmed."""
    result = geo.resolve(text, limit=12, suggest=True)
    assert result.status == "suggested", result
    assert insee in _insees(result.communes)
    # Without `suggest`, resolve answers exactly as before.
    assert geo.resolve(text).status == "not_found"


def test_a_department_qualifier_narrows_suggestions(geo: Geography) -> None:
    assert _insees(geo.resolve("Digion 71", suggest=True).communes) == ["71176"]


def test_suggestions_never_replace_a_match(geo: Geography) -> None:
    """Exact names, first words, postcodes and qualifiers resolve as without `suggest`."""
    for text in ("Paray-le-Monial", "71600", "Saint-Martin", "Montceau", "Chalon", "Torcy 71",
                 "21000", "Paris 15e", "Beaune (21)", "L'Isle-Adam", "st etienne"):
        assert geo.resolve(text, suggest=True) == geo.resolve(text), text


@pytest.mark.parametrize(
    ("text", "insee"),
    [("paray le monail", PARAY), ("besanson", "25056"), ("clermon ferand", "63113")],
)
def test_a_typo_taken_silently_is_only_suggested_when_asked(
    geo: Geography, text: str, insee: str
) -> None:
    """Without `suggest`, a close typo is `found` as before; with it, it is to be confirmed."""
    assert geo.resolve(text).status == "found"
    suggested = geo.resolve(text, suggest=True)
    assert suggested.status == "suggested"
    assert suggested.communes[0].insee == insee


def test_nothing_near_is_not_found(geo: Geography) -> None:
    for text in ("xyzzy", "bonjour", "Zzyzxville", "abc", "x" * 60, "a b c " * 500):
        result = geo.resolve(text, suggest=True)
        assert result.status == "not_found", (text, result)
        assert not result.unknown_postcode


@pytest.mark.parametrize("text", ["99999", "99 999", "00000", "71999"])
def test_five_digits_that_are_no_postcode_are_said_so(geo: Geography, text: str) -> None:
    result = geo.resolve(text, suggest=True)
    assert (result.status, result.unknown_postcode) == ("not_found", True)


def test_known_postcodes_and_short_numbers_are_not_flagged(geo: Geography) -> None:
    assert not geo.resolve("71600").unknown_postcode
    assert not geo.resolve("1234").unknown_postcode  # four digits: not said to be a postcode
    assert geo.resolve("71342").status == "found"  # an INSEE code that is no postcode
