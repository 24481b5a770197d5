"""Loading territory files: the partner directory, its validation and the shipped example."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from knowledge.geography import Commune, Geography, default_geography
from knowledge.taxonomy import PARTNER_KINDS, THEME_KEYS
from knowledge.territories import (
    SIZE_BANDS,
    Territory,
    TerritoryDirectory,
    TerritoryError,
    load_territories,
)

SHIPPED = Path(__file__).resolve().parents[1] / "territories"
GRAND_CHAROLAIS = "200071884"
CREUSOT_MONTCEAU = "247100290"
DIJON_METROPOLE = "242100410"


@pytest.fixture(scope="module")
def geo() -> Geography:
    """The shipped geography (real communes)."""
    return default_geography()


def _territory(**extra: Any) -> dict[str, Any]:
    """A valid territory with three real EPCI and two partners (one zoned, one not)."""
    data: dict[str, Any] = {
        "id": "ti-test",
        "name": "Territoire de test",
        "epci": [
            {"siren": GRAND_CHAROLAIS, "name": "CC Le Grand Charolais"},
            {"siren": CREUSOT_MONTCEAU, "name": "CU Le Creusot Montceau-les-Mines"},
            {"siren": DIJON_METROPOLE, "name": "Dijon Métropole"},
        ],
        "animators": [{"name": "Alex Test", "email": "alex@example.org"}],
        "partners": [
            {
                "id": "ft-paray",
                "name": "France Travail Paray-le-Monial",
                "kind": "france_travail",
                "email": "ft-paray@example.org",
                "themes": ["recrutement"],
                "zone": {"epci": [GRAND_CHAROLAIS]},
            },
            {
                "id": "opco-test",
                "name": "OPCO 2i",
                "kind": "opco",
                "email": "opco@example.org",
                "themes": ["competences", "recrutement"],
            },
        ],
    }
    data.update(extra)
    return data


def _write(directory: Path, name: str, data: dict[str, Any]) -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


# -- what loads ------------------------------------------------------------------------------


def test_shipped_example_loads_with_its_directory(geo: Geography) -> None:
    """The Bourgogne Industrie file loads; every theme has at least one partner."""
    directory = load_territories(SHIPPED, geo)
    territory = directory.get("ti-2703")
    assert territory is not None
    assert territory.animators[0].name == "Claire Martin"
    assert directory.for_epci(GRAND_CHAROLAIS) is territory
    assert directory.animator_user_ids() == {900000001}
    assert len(territory.partners) >= 15
    covered = {theme for p in territory.partners for theme in p.themes}
    assert covered == set(THEME_KEYS)
    assert all(p.email.endswith("@example.org") for p in territory.partners)
    kinds = {p.kind for p in territory.partners}
    assert {"france_travail", "opco", "cci", "cma", "region", "bpifrance", "ademe", "epf",
            "epci_dev_eco", "business_france"} <= kinds
    assert directory.partner("ft-paray-le-monial") is not None
    assert "FICTITIOUS" in (SHIPPED / "bourgogne-industrie.yaml").read_text(encoding="utf-8")


def test_shipped_example_loads_with_the_default_geography() -> None:
    """Without a geography, load_territories validates zones against the shipped one."""
    assert load_territories(SHIPPED).get("ti-2703") is not None


def test_partner_fields_defaults_and_normalisation(tmp_path: Path, geo: Geography) -> None:
    """Defaults (ack_days 2, activity any, no zone) and normalised codes and email."""
    data = _territory(telegram_group_id=-1001234567890)
    data["partners"][0]["email"] = "FT-Paray@EXAMPLE.org"
    data["partners"].append({
        "id": "cma-corse",
        "name": "CMA",
        "kind": "cma",
        "email": "cma@example.org",
        "themes": ["financement"],
        "zone": {"departements": ["71"], "regions": ["27"], "communes": ["71342"]},
        "filters": {"activity": "artisan", "size_bands": ["00", "01", "02"]},
        "ack_days": 5,
    })
    _write(tmp_path, "t.yaml", data)
    territory = load_territories(tmp_path, geo).territories[0]
    ft, opco, cma = territory.partners
    assert territory.telegram_group_id == -1001234567890
    assert ft.email == "FT-Paray@example.org"
    assert opco.zone is None and opco.ack_days == 2 and opco.filters.activity == "any"
    assert opco.filters.size_bands == ()
    assert cma.filters.size_bands == ("00", "01", "02") and cma.ack_days == 5
    assert cma.zone is not None and cma.zone.communes == ("71342",)


def test_files_without_partners_still_load(tmp_path: Path) -> None:
    """`partners` is optional: older files keep working."""
    data = _territory()
    del data["partners"]
    _write(tmp_path, "t.yaml", data)
    assert load_territories(tmp_path).territories[0].partners == ()


def test_zones_are_checked_against_the_given_geography(tmp_path: Path) -> None:
    """A custom geography is the one consulted: its communes exist, others do not."""
    tiny = Geography([
        Commune("71342", "Paray-le-Monial", ("71600",), "71", "27", GRAND_CHAROLAIS,
                "CC Le Grand Charolais"),
        Commune("71153", "Le Creusot", ("71200",), "71", "27", CREUSOT_MONTCEAU,
                "CU Le Creusot Montceau-les-Mines"),
        Commune("21231", "Dijon", ("21000",), "21", "27", DIJON_METROPOLE, "Dijon Métropole"),
    ])
    data = _territory()
    data["partners"][0]["zone"] = {"communes": ["71342"]}
    _write(tmp_path, "t.yaml", data)
    assert load_territories(tmp_path, tiny).territories[0].partners[0].zone is not None
    data["partners"][0]["zone"] = {"communes": ["71306"]}  # real, but not in `tiny`
    _write(tmp_path, "t.yaml", data)
    with pytest.raises(TerritoryError, match=r"partners\[0\]\.zone\.communes\[0\] : commune inconnue 71306"):
        load_territories(tmp_path, tiny)


def test_directory_lookups(tmp_path: Path, geo: Geography) -> None:
    """for_epci, get and partner use the indexes; unknown keys give None."""
    _write(tmp_path, "a.yaml", _territory())
    directory = load_territories(tmp_path, geo)
    assert directory.for_epci(DIJON_METROPOLE).id == "ti-test"  # type: ignore[union-attr]
    assert directory.for_epci("242900314") is None and directory.for_epci(None) is None
    assert directory.get("ti-nope") is None
    assert directory.partner("opco-test").kind == "opco"  # type: ignore[union-attr]
    assert directory.partner("nope") is None
    again = TerritoryDirectory(directory.territories)
    assert again == directory and again.for_epci(GRAND_CHAROLAIS) is directory.territories[0]


# -- what is refused -------------------------------------------------------------------------


def test_a_member_epci_unknown_to_the_geography_is_refused(tmp_path: Path, geo: Geography) -> None:
    """An EPCI merged since (2023 list): its communes would reach no territory; said so."""
    data = _territory()
    # CA du Val de Fensch, member of Nord Lorraine in the 2023 list, merged since
    data["epci"].append({"siren": "245701222", "name": "CA du Val de Fensch"})
    _write(tmp_path, "t.yaml", data)
    with pytest.raises(TerritoryError, match=(
            r"epci\[3\] : l'EPCI 245701222 \(CA du Val de Fensch\) est inconnu de la table "
            r"des communes \(fusionné ou dissous \?\) : ses communes ne seraient rattachées à "
            r"aucun territoire")):
        load_territories(tmp_path, geo)


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set data['partners'][0]['zone'] etc. from 'partners.0.zone'."""
    parts = dotted.split(".")
    target: Any = data
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    last = parts[-1]
    if last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value


REFUSALS: list[tuple[str, str, Any, str]] = [
    # (case, where to write, value, expected "field : message" fragment)
    ("unknown theme", "partners.1.themes.1", "cuisine",
     "partners[1].themes[1] : thème inconnu 'cuisine'"),
    ("duplicate theme", "partners.1.themes", ["competences", "competences"],
     "partners[1].themes : thème en double 'competences'"),
    ("no theme", "partners.1.themes", [], "partners[1].themes : liste trop courte"),
    ("bad email", "partners.0.email", "ft-paray.example.org",
     "partners[0].email : adresse e-mail invalide 'ft-paray.example.org'"),
    ("unknown kind", "partners.0.kind", "pole_emploi",
     "partners[0].kind : type de partenaire inconnu 'pole_emploi'"),
    ("bad id", "partners.0.id", "FT Paray", "partners[0].id : identifiant invalide 'FT Paray'"),
    ("unknown commune", "partners.0.zone", {"communes": ["99999"]},
     "partners[0].zone.communes[0] : commune inconnue 99999"),
    ("commune outside the territory", "partners.0.zone", {"communes": ["71342", "29019"]},
     "partners[0].zone.communes[1] : la commune 29019 (Brest) est hors du territoire"),
    ("unknown EPCI", "partners.0.zone", {"epci": ["123456782"]},
     "partners[0].zone.epci[0] : EPCI inconnu 123456782"),
    ("EPCI not a member", "partners.0.zone", {"epci": ["242900314"]},
     "partners[0].zone.epci[0] : l'EPCI 242900314 (Brest Métropole) n'est pas membre du territoire"),
    ("unknown département", "partners.0.zone", {"departements": ["71", "99"]},
     "partners[0].zone.departements[1] : département inconnu 99"),
    ("département outside", "partners.0.zone", {"departements": ["29"]},
     "partners[0].zone.departements[0] : aucune commune du territoire dans le département 29"),
    ("unknown région", "partners.0.zone", {"regions": ["99"]},
     "partners[0].zone.regions[0] : région inconnue 99"),
    ("région outside", "partners.0.zone", {"regions": ["53"]},
     "partners[0].zone.regions[0] : aucune commune du territoire dans la région 53"),
    ("unquoted code", "partners.0.zone", {"communes": [71342]},
     "partners[0].zone.communes[0] : texte attendu"),
    ("empty zone", "partners.0.zone", {"communes": []}, "partners[0].zone : zone vide"),
    ("unknown zone key", "partners.0.zone", {"cantons": ["7101"]},
     "partners[0].zone.cantons : champ inconnu"),
    ("unknown size band", "partners.0.filters", {"size_bands": ["13"]},
     "partners[0].filters.size_bands[0] : tranche d'effectif inconnue '13'"),
    ("bad activity", "partners.0.filters", {"activity": "artisanal"},
     "partners[0].filters.activity : valeur invalide 'artisanal'"),
    ("ack_days too small", "partners.0.ack_days", 0,
     "partners[0].ack_days : doit être supérieur ou égal à 1"),
    ("ack_days too large", "partners.0.ack_days", 31,
     "partners[0].ack_days : doit être inférieur ou égal à 30"),
    ("missing email", "partners.1", {"id": "x-1", "name": "X", "kind": "opco", "themes": ["autre"]},
     "partners[1].email : champ obligatoire manquant"),
    ("bad animator email", "animators.0.email", "alex@", "animators[0].email : adresse e-mail invalide"),
    ("invalid member SIREN", "epci.0.siren", "200071885", "epci[0].siren : SIREN invalide"),
]


@pytest.mark.parametrize(("where", "value", "expected"),
                         [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_each_refusal_names_file_and_field(
    tmp_path: Path, geo: Geography, where: str, value: Any, expected: str
) -> None:
    """A bad value is refused with 'file: field : French message'."""
    data = copy.deepcopy(_territory())
    _set(data, where, value)
    path = _write(tmp_path, "x.yaml", data)
    with pytest.raises(TerritoryError) as caught:
        load_territories(tmp_path, geo)
    assert f"{path}: {expected}" in str(caught.value)


def test_duplicate_partner_id_across_files(tmp_path: Path, geo: Geography) -> None:
    """Partner ids are unique across all territories; both files are named."""
    first = _write(tmp_path, "a.yaml", _territory())
    other = _territory(id="ti-other", epci=[{"siren": "242900314", "name": "Brest Métropole"}])
    other["partners"] = [dict(other["partners"][1])]  # opco-test again, no zone
    second = _write(tmp_path, "b.yaml", other)
    with pytest.raises(TerritoryError) as caught:
        load_territories(tmp_path, geo)
    assert str(caught.value) == (
        f"{second}: partners[0].id : identifiant de partenaire en double 'opco-test' "
        f"(déjà défini dans {first})"
    )


def test_duplicate_partner_id_in_one_file(tmp_path: Path, geo: Geography) -> None:
    """The same id twice in one file is refused at the second one."""
    data = _territory()
    data["partners"][1]["id"] = "ft-paray"
    path = _write(tmp_path, "x.yaml", data)
    with pytest.raises(TerritoryError, match=r"partners\[1\]\.id : identifiant de partenaire en double 'ft-paray'") as caught:
        load_territories(tmp_path, geo)
    assert str(caught.value).startswith(f"{path}: ")


def test_every_error_of_a_file_is_reported(tmp_path: Path, geo: Geography) -> None:
    """Several mistakes in one file are listed together, one line each."""
    data = _territory()
    data["partners"][0]["zone"] = {"communes": ["99999"], "departements": ["98"]}
    _write(tmp_path, "x.yaml", data)
    with pytest.raises(TerritoryError) as caught:
        load_territories(tmp_path, geo)
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert "communes[0] : commune inconnue 99999" in lines[0]
    assert "departements[0] : département inconnu 98" in lines[1]


def test_existing_refusals_are_kept(tmp_path: Path, geo: Geography) -> None:
    """Missing folder, unreadable YAML, EPCI in two territories, duplicate territory id."""
    with pytest.raises(TerritoryError, match="dossier des territoires introuvable"):
        load_territories(tmp_path / "absent", geo)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.yaml").write_text("id: [", encoding="utf-8")
    with pytest.raises(TerritoryError, match="YAML illisible"):
        load_territories(bad, geo)
    two = tmp_path / "two"
    two.mkdir()
    _write(two, "a.yaml", _territory())
    second = _territory(id="ti-other", partners=[])
    _write(two, "b.yaml", second)
    with pytest.raises(TerritoryError, match=r"b\.yaml: epci : l'EPCI 200071884 appartient déjà à ti-test"):
        load_territories(two, geo)
    _write(two, "b.yaml", _territory(epci=[{"siren": "242900314", "name": "Brest"}], partners=[]))
    with pytest.raises(TerritoryError, match=r"b\.yaml: id : identifiant en double 'ti-test'"):
        load_territories(two, geo)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    """An empty YAML file names the file, not a Python error."""
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    with pytest.raises(TerritoryError, match=r"empty\.yaml: \(racine du fichier\) : objet attendu"):
        load_territories(tmp_path)


def test_vocabularies_are_the_taxonomy() -> None:
    """Kinds and themes accepted are exactly the shared vocabularies; 15 INSEE bands."""
    base = _territory()["partners"][1]
    for kind in PARTNER_KINDS:
        Territory.model_validate(_territory(partners=[{**base, "kind": kind}]))
    Territory.model_validate(_territory(partners=[{**base, "themes": list(THEME_KEYS)}]))
    assert len(SIZE_BANDS) == 15 and "NN" not in SIZE_BANDS
