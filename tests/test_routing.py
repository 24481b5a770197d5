"""Routing a confirmed need to partners: zone levels, specificity per kind, filters, fallback."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.commands.route import route_command
from bot.services.explain import decision_text, partner_reason
from knowledge.geography import Geography, default_geography
from knowledge.routing import LEVELS, FirmFacts, Router, RoutingDecision, RoutingError
from knowledge.taxonomy import THEME_KEYS, theme_noun
from knowledge.territories import TerritoryDirectory, load_territories

SHIPPED = Path(__file__).resolve().parents[1] / "territories"

GRAND_CHAROLAIS = "200071884"
CREUSOT_MONTCEAU = "247100290"
DIJON_METROPOLE = "242100410"
BREST_METROPOLE = "242900314"
METROPOLE_DE_LYON = "200046977"

PARAY = "71342"  # CC Le Grand Charolais, Saône-et-Loire (71), Bourgogne-Franche-Comté (27)
DIGOIN = "71176"  # same EPCI, not Paray
MONTCEAU = "71306"  # other EPCI of the territory, still in 71
DIJON = "21231"  # Côte-d'Or (21), same région 27
CHASSENARD = "03063"  # CC Le Grand Charolais but Allier (03), région 84
SAINT_ETIENNE = "42218"  # Saint-Etienne Métropole: Loire (42), région 84
SAINT_ETIENNE_METROPOLE = "244200770"
BREST = "29019"
PLOUZANE = "29212"  # Brest Métropole, not Brest
LYON = "69123"
LYON_3E = "69383"

# The commune where each zone level is the most specific match in the "alpha" territory.
COMMUNE_FOR_LEVEL = {
    "commune": PARAY,
    "epci": DIGOIN,
    "departement": MONTCEAU,
    "region": DIJON,
    "territoire": SAINT_ETIENNE,
}
ZONE_FOR_LEVEL: dict[str, dict[str, list[str]] | None] = {
    "commune": {"communes": [PARAY]},
    "epci": {"epci": [GRAND_CHAROLAIS]},
    "departement": {"departements": ["71"]},
    "region": {"regions": ["27"]},
    "territoire": None,
}
CODE_TEXT = {
    "commune": f"zone commune {PARAY}",
    "epci": f"zone EPCI {GRAND_CHAROLAIS}",
    "departement": "zone département 71",
    "region": "zone région 27",
    "territoire": "tout le territoire",
}
KIND_FOR_THEME = {
    "recrutement": "france_travail",
    "competences": "opco",
    "foncier": "epf",
    "innovation": "region",
    "mutualisation": "epci_dev_eco",
    "financement": "bpifrance",
    "transition": "ademe",
    "export": "business_france",
    "mobilite": "epci_dev_eco",
    "difficulte": "cci",
    "autre": "agence_dev_eco",
}


@pytest.fixture(scope="module")
def geo() -> Geography:
    """The shipped geography (real communes)."""
    return default_geography()


def _write(directory: Path, name: str, data: dict[str, Any]) -> None:
    (directory / name).write_text(
        yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )


def _partner(pid: str, kind: str, themes: list[str], zone: Any = None, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": pid,
        "name": f"Partenaire {pid}",
        "kind": kind,
        "email": f"{pid}@example.org",
        "themes": themes,
    }
    if zone is not None:
        data["zone"] = zone
    data.update(extra)
    return data


@pytest.fixture(scope="module")
def table_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Alpha: five same-kind partners per theme, one per zone level. Beta: Brest, one partner."""
    directory = tmp_path_factory.mktemp("table")
    partners = [
        _partner(f"{theme}-{level}", KIND_FOR_THEME[theme], [theme], ZONE_FOR_LEVEL[level])
        for theme in THEME_KEYS
        for level in LEVELS
    ]
    _write(directory, "alpha.yaml", {
        "id": "ti-alpha",
        "name": "Alpha Industrie",
        "epci": [
            {"siren": GRAND_CHAROLAIS, "name": "CC Le Grand Charolais"},
            {"siren": CREUSOT_MONTCEAU, "name": "CU Le Creusot Montceau-les-Mines"},
            {"siren": DIJON_METROPOLE, "name": "Dijon Métropole"},
            {"siren": SAINT_ETIENNE_METROPOLE, "name": "Saint-Etienne Métropole"},
        ],
        "animators": [{"name": "Alice Alpha", "email": "alice@example.org"}],
        "partners": partners,
    })
    _write(directory, "beta.yaml", {
        "id": "ti-beta",
        "name": "Beta Industrie",
        "epci": [{"siren": BREST_METROPOLE, "name": "Brest Métropole"}],
        "animators": [
            {"name": "Bruno Beta", "email": "bruno@example.org"},
            {"name": "Berthe Beta", "email": "berthe@example.org"},
        ],
        # Partners exist, but none covers Plouzané: every theme falls back there.
        "partners": [_partner("ft-brest", "france_travail", ["recrutement"], {"communes": [BREST]})],
    })
    return directory


@pytest.fixture(scope="module")
def table_router(table_dir: Path, geo: Geography) -> Router:
    """A router over the table directory."""
    return Router(load_territories(table_dir, geo), geo)


# -- the table: every theme x zone level, and both fallbacks ------------------------------

TABLE: list[tuple[str, str, str | None, str | None, str | None]] = [
    # (theme, commune, expected territory, expected partner id or None (fallback), level)
    *[
        (theme, COMMUNE_FOR_LEVEL[level], "ti-alpha", f"{theme}-{level}", level)
        for theme in THEME_KEYS
        for level in LEVELS
    ],
    *[(theme, PLOUZANE, "ti-beta", None, None) for theme in THEME_KEYS],
    *[(theme, LYON, None, None, None) for theme in THEME_KEYS],
]


@pytest.mark.parametrize(
    ("theme", "commune", "territory_id", "partner_id", "level"),
    TABLE,
    ids=[f"{row[0]}-{row[4] or ('no-partner' if row[2] else 'no-territory')}" for row in TABLE],
)
def test_routing_table(
    table_router: Router,
    theme: str,
    commune: str,
    territory_id: str | None,
    partner_id: str | None,
    level: str | None,
) -> None:
    """The most specific zone level wins; no match falls back to the animators (or nobody)."""
    decision = table_router.route(theme=theme, commune_insee=commune)
    assert (decision.territory.id if decision.territory else None) == territory_id
    if partner_id is None:
        assert decision.fallback and decision.partners == ()
        if territory_id == "ti-beta":
            assert [a.name for a in decision.animators] == ["Bruno Beta", "Berthe Beta"]
            assert "aucun partenaire ne traite ce besoin ici" in _why(decision)
            assert "Bruno Beta ; Berthe Beta" in _why(decision)
        else:
            assert decision.animators == ()
            assert "n'appartient à aucun Territoire d'industrie configuré" in _why(decision)
        return
    assert not decision.fallback and decision.animators == () and level is not None
    (routed,) = decision.partners
    assert (routed.partner.id, routed.level) == (partner_id, level)
    # The reason says the theme as a noun (never its key) and the zone; not the partner's
    # name, which the card and the email give already.
    noun = theme_noun(theme)
    assert partner_reason(theme, routed).plain() == (
        f"thème {noun[0].lower()}{noun[1:]}, {CODE_TEXT[level]}")
    # The less specific partners of the same kind are named, with the one kept instead.
    if level != "territoire":
        why = _why(decision)
        assert "du même type plus proche" in why
        assert f"Partenaire {partner_id} plutôt que Partenaire {theme}-territoire" in why


def test_table_covers_every_theme_and_level() -> None:
    """The table has 11 themes x (5 levels + 2 fallbacks) rows."""
    assert len(THEME_KEYS) == 11
    assert len(TABLE) == len(THEME_KEYS) * (len(LEVELS) + 2)


# -- a mixed directory: specificity per kind, filters, several partners ----------------------


@pytest.fixture(scope="module")
def mixed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One territory with partners of several kinds and filters; one in the Métropole de Lyon."""
    directory = tmp_path_factory.mktemp("mixed")
    small = ["00", "01", "02", "03", "11", "12"]
    _write(directory, "mix.yaml", {
        "id": "ti-mix",
        "name": "Mix Industrie",
        "epci": [
            {"siren": GRAND_CHAROLAIS, "name": "CC Le Grand Charolais"},
            {"siren": CREUSOT_MONTCEAU, "name": "CU Le Creusot Montceau-les-Mines"},
        ],
        "animators": [{"name": "Maud Mix", "email": "maud@example.org"}],
        "partners": [
            _partner("ft-71", "france_travail", ["recrutement"], {"departements": ["71"]}),
            _partner("ft-paray", "france_travail", ["recrutement"], {"epci": [GRAND_CHAROLAIS]},
                     filters={"size_bands": small}, name="France Travail Paray-le-Monial"),
            _partner("opco", "opco", ["recrutement", "competences"]),
            _partner("cci-71", "cci", ["financement"], {"departements": ["71"]},
                     filters={"activity": "industrial"}),
            _partner("cma-71", "cma", ["financement"], {"departements": ["71"]},
                     filters={"activity": "artisan"}),
            _partner("bpi-b", "bpifrance", ["financement"]),
            _partner("bpi-a", "bpifrance", ["financement"]),
            _partner("region", "region", ["financement"], {"regions": ["27"]}),
            _partner("cma-innov", "cma", ["innovation"], {"departements": ["71"]},
                     filters={"activity": "artisan"}),
            # A zone is a union: Paray by its commune code, the whole urban community by EPCI.
            _partner("devco", "epci_dev_eco", ["foncier"],
                     {"communes": [PARAY], "epci": [CREUSOT_MONTCEAU]}),
        ],
    })
    _write(directory, "lyon.yaml", {
        "id": "ti-lyon",
        "name": "Lyon Industrie",
        "epci": [{"siren": METROPOLE_DE_LYON, "name": "Métropole de Lyon"}],
        "animators": [{"name": "Léa Lyon", "email": "lea@example.org"}],
        "partners": [_partner("ft-lyon", "france_travail", ["recrutement"], {"communes": [LYON]})],
    })
    return directory


@pytest.fixture(scope="module")
def mixed(mixed_dir: Path, geo: Geography) -> Router:
    """A router over the mixed directory."""
    return Router(load_territories(mixed_dir, geo), geo)


def _why(decision: RoutingDecision) -> str:
    """The decision as the chef de projet reads it."""
    return decision_text(decision).plain()


def _reason(decision: RoutingDecision, index: int = 0) -> str:
    """Why a chosen partner receives the need, as the partner and the card say it."""
    return partner_reason(decision.theme, decision.partners[index]).plain()


def _ids(decision: RoutingDecision) -> list[tuple[str, str]]:
    return [(r.partner.id, r.level) for r in decision.partners]


def test_most_specific_level_wins_per_kind(mixed: Router) -> None:
    """Paray's agency beats the département's; the OPCO still receives the recruiting need."""
    decision = mixed.route(theme="recrutement", commune_insee=PARAY)
    assert _ids(decision) == [("ft-paray", "epci"), ("opco", "territoire")]
    assert _reason(decision) == (
        "thème recrutement, zone EPCI 200071884, tranches d'effectif 00, 01, 02, 03, 11, 12"
    )
    assert _why(decision) == (
        "Paray-le-Monial (71342), CC Le Grand Charolais (200071884) → Mix Industrie (ti-mix), "
        "thème recrutement : 2 partenaires retenus (France Travail Paray-le-Monial ; "
        "Partenaire opco). Partenaire du même type plus proche : "
        "France Travail Paray-le-Monial plutôt que Partenaire ft-71."
    )
    montceau = mixed.route(theme="recrutement", commune_insee=MONTCEAU)
    assert _ids(montceau) == [("ft-71", "departement"), ("opco", "territoire")]


@pytest.mark.parametrize(
    ("size_band", "expected"),
    [
        (None, "ft-paray"),  # unknown: never excludes
        ("NN", "ft-paray"),  # no declared headcount: unknown too
        ("11", "ft-paray"),
        ("21", "ft-71"),  # 50-99 employees: the local agency's filter excludes, the direction takes it
    ],
)
def test_size_band_filter(mixed: Router, size_band: str | None, expected: str) -> None:
    """A size filter excludes only a known, different band; the next level of the kind takes over."""
    decision = mixed.route(
        theme="recrutement", commune_insee=PARAY, firm=FirmFacts(size_band=size_band)
    )
    assert [r.partner.id for r in decision.partners] == [expected, "opco"]
    if expected == "ft-71":
        assert "Écarté par ses filtres : France Travail Paray-le-Monial " \
               "(tranche d'effectif 21 non servie)." in _why(decision)


@pytest.mark.parametrize(
    ("artisan", "expected"),
    [
        (True, ["cma-71", "region", "bpi-a", "bpi-b"]),
        (False, ["cci-71", "region", "bpi-a", "bpi-b"]),
        (None, ["cci-71", "cma-71", "region", "bpi-a", "bpi-b"]),
    ],
)
def test_activity_filter_and_order(mixed: Router, artisan: bool | None, expected: list[str]) -> None:
    """Artisan -> CMA, not CCI; unknown -> both; order is level, then kind, then id."""
    for firm in (FirmFacts(artisan=artisan), FirmFacts(artisan=artisan, naf="25.62A", idcc=("3248",))):
        decision = mixed.route(theme="financement", commune_insee=PARAY, firm=firm)
        assert [r.partner.id for r in decision.partners] == expected
    levels = [r.level for r in decision.partners]
    assert levels == sorted(levels, key=LEVELS.index)
    if artisan is True:
        assert "Partenaire cci-71 (réservé aux entreprises non artisanales)" in _why(decision)
        assert _reason(decision).endswith(", réservé aux entreprises artisanales")


def test_several_partners_of_one_kind_and_level(mixed: Router) -> None:
    """Two Bpifrance contacts for the whole territory both receive, sorted by id."""
    decision = mixed.route(theme="financement", commune_insee=MONTCEAU, firm=None)
    bpi = [r for r in decision.partners if r.partner.kind == "bpifrance"]
    assert [(r.partner.id, r.level) for r in bpi] == [("bpi-a", "territoire"), ("bpi-b", "territoire")]
    assert "5 partenaires retenus" in _why(decision)


def test_zone_union_matches_at_each_own_level(mixed: Router) -> None:
    """A zone with a commune and an EPCI matches each at its level; elsewhere, fallback."""
    assert _ids(mixed.route(theme="foncier", commune_insee=PARAY)) == [("devco", "commune")]
    assert _ids(mixed.route(theme="foncier", commune_insee=MONTCEAU)) == [("devco", "epci")]
    decision = mixed.route(theme="foncier", commune_insee=DIGOIN)
    assert decision.fallback and decision.partners == ()
    assert [a.name for a in decision.animators] == ["Maud Mix"]
    assert _why(decision) == (
        "Digoin (71176), CC Le Grand Charolais (200071884) → Mix Industrie (ti-mix), thème "
        "foncier : aucun partenaire ne traite ce besoin ici ; la demande va au chef de projet "
        "du territoire (Maud Mix)."
    )


def test_fallback_when_filters_exclude_everyone(mixed: Router) -> None:
    """A partner excluded by its filter leaves nobody: fallback, and the explanation says why."""
    decision = mixed.route(theme="innovation", commune_insee=PARAY, firm=FirmFacts(artisan=False))
    assert decision.fallback and decision.partners == ()
    assert _why(decision).endswith(
        "la demande va au chef de projet du territoire (Maud Mix). Écarté par ses filtres : "
        "Partenaire cma-innov (réservé aux entreprises artisanales)."
    )
    unknown = mixed.route(theme="innovation", commune_insee=PARAY, firm=FirmFacts())
    assert _ids(unknown) == [("cma-innov", "departement")]


def test_arrondissement_is_inside_its_commune_zone(mixed: Router) -> None:
    """Lyon 3e (69383) is covered by a zone naming Lyon (69123)."""
    decision = mixed.route(theme="recrutement", commune_insee=LYON_3E)
    assert _reason(decision) == "thème recrutement, zone commune 69123"
    assert decision.territory is not None and decision.territory.id == "ti-lyon"


def test_unknown_theme_or_commune_is_an_error(mixed: Router) -> None:
    """Callers pass intake keys and geography codes; anything else is a bug, not a fallback."""
    with pytest.raises(RoutingError, match="thème inconnu 'cuisine'"):
        mixed.route(theme="cuisine", commune_insee=PARAY)
    with pytest.raises(RoutingError, match="thème inconnu"):
        mixed.route(theme="cuisine", commune_insee=BREST)
    with pytest.raises(RoutingError, match="commune inconnue '99999'"):
        mixed.route(theme="recrutement", commune_insee="99999")
    assert isinstance(RoutingError("x"), ValueError)


def test_decisions_are_deterministic_and_frozen(mixed_dir: Path, geo: Geography) -> None:
    """Two routers over the same files give equal decisions; decisions cannot be changed."""
    first = Router(load_territories(mixed_dir, geo), geo)
    second = Router(load_territories(mixed_dir, geo), geo)
    for theme in THEME_KEYS:
        for commune in (PARAY, DIGOIN, MONTCEAU, LYON_3E, BREST):
            a = first.route(theme=theme, commune_insee=commune)
            b = second.route(theme=theme, commune_insee=commune)
            assert a == b
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.fallback = False  # type: ignore[misc]


def test_empty_directory_routes_everything_to_nobody(geo: Geography) -> None:
    """Without territories every decision is a fallback without territory."""
    decision = Router(TerritoryDirectory(()), geo).route(theme="autre", commune_insee=PARAY)
    assert decision.fallback and decision.territory is None and decision.animators == ()


# -- the shipped example ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped(geo: Geography) -> Router:
    """A router over territories/ (Bourgogne Industrie)."""
    return Router(load_territories(SHIPPED, geo), geo)


@pytest.mark.parametrize(
    ("theme", "commune", "firm", "expected"),
    [
        ("recrutement", PARAY, None, ["ft-paray-le-monial", "opco2i-bfc"]),
        ("recrutement", MONTCEAU, None, ["ft-montceau-les-mines", "opco2i-bfc"]),
        ("recrutement", "71153", None, ["ft-le-creusot", "opco2i-bfc"]),  # Le Creusot
        ("recrutement", "71230", None, ["ft-saone-et-loire", "opco2i-bfc"]),  # Gueugnon
        ("recrutement", DIJON, None, ["ft-dijon", "opco2i-bfc"]),
        ("recrutement", "71014", None, ["ft-autun", "opco2i-bfc"]),  # Autun
        ("financement", PARAY, FirmFacts(artisan=True),
         ["cma-saone-et-loire", "region-bfc", "bpifrance-bourgogne"]),
        ("export", DIJON, FirmFacts(artisan=False),
         ["cci-cote-d-or", "tfe-bfc", "bpifrance-bourgogne"]),
        ("foncier", PARAY, None, ["devco-grand-charolais", "epf-bfc"]),
        ("transition", DIJON, None, ["ademe-bfc", "region-bfc"]),
        ("transition", CHASSENARD, None, []),  # Allier: no ADEME/Région zone -> animator
    ],
)
def test_shipped_directory(
    shipped: Router, theme: str, commune: str, firm: FirmFacts | None, expected: list[str]
) -> None:
    """Bourgogne Industrie routes each need as a person would expect."""
    decision = shipped.route(theme=theme, commune_insee=commune, firm=firm)
    assert [r.partner.id for r in decision.partners] == expected
    assert decision.fallback is (not expected)
    if not expected:
        assert [a.name for a in decision.animators] == ["Claire Martin"]


def test_shipped_reason_reads_like_the_issue(shipped: Router) -> None:
    """The reason a person reads names the theme and the zone (the partner is named beside it)."""
    decision = shipped.route(theme="recrutement", commune_insee=PARAY)
    assert _reason(decision) == "thème recrutement, zone EPCI 200071884"


# -- relais route ----------------------------------------------------------------------------


def _run(capsys: pytest.CaptureFixture[str], directory: Path, geo: Geography, commune: str,
         theme: str, as_json: bool = True, size_band: str | None = None,
         artisan: bool | None = None) -> tuple[int, str, str]:
    code = route_command(commune, theme, as_json, size_band, artisan, directory=directory,
                         geography=geo)
    out, err = capsys.readouterr()
    return code, out, err


def test_route_command_json(capsys: pytest.CaptureFixture[str], mixed_dir: Path, geo: Geography) -> None:
    """JSON output: commune, territory, fallback and each partner with id, level and reason."""
    code, out, _ = _run(capsys, mixed_dir, geo, PARAY, "recrutement")
    assert code == 0
    data = json.loads(out)
    assert data["commune"]["insee"] == PARAY and data["commune"]["name"] == "Paray-le-Monial"
    assert data["commune"]["epci_siren"] == GRAND_CHAROLAIS
    assert data["territory"] == {"id": "ti-mix", "name": "Mix Industrie"}
    assert data["fallback"] is False and data["animators"] == []
    assert [p["id"] for p in data["partners"]] == ["ft-paray", "opco"]
    first = data["partners"][0]
    assert {"id", "name", "kind", "email", "level", "reason"} <= set(first)
    assert first["kind"] == "france_travail" and first["level"] == "epci"
    assert first["email"] == "ft-paray@example.org"
    assert first["reason"].startswith("thème recrutement, zone EPCI 200071884")


def test_route_command_json_with_firm_facts_and_name(
    capsys: pytest.CaptureFixture[str], mixed_dir: Path, geo: Geography
) -> None:
    """A commune name works; --size-band and --artisan feed the filters."""
    code, out, _ = _run(capsys, mixed_dir, geo, "Paray-le-Monial", "recrutement", size_band="21")
    assert code == 0 and [p["id"] for p in json.loads(out)["partners"]] == ["ft-71", "opco"]
    code, out, _ = _run(capsys, mixed_dir, geo, "paray le monial", "financement", artisan=True)
    assert [p["id"] for p in json.loads(out)["partners"]] == ["cma-71", "region", "bpi-a", "bpi-b"]


def test_route_command_fallbacks(capsys: pytest.CaptureFixture[str], mixed_dir: Path, geo: Geography) -> None:
    """Fallback to the animator, and outside every territory: territory null."""
    code, out, _ = _run(capsys, mixed_dir, geo, DIGOIN, "foncier")
    data = json.loads(out)
    assert code == 0 and data["fallback"] is True and data["partners"] == []
    assert data["animators"] == [{"name": "Maud Mix", "email": "maud@example.org"}]
    code, out, _ = _run(capsys, mixed_dir, geo, "29200", "foncier")  # Brest's only postcode
    data = json.loads(out)
    assert code == 0 and data["territory"] is None and data["fallback"] is True
    assert data["commune"]["insee"] == BREST


def test_route_command_ambiguous_commune(capsys: pytest.CaptureFixture[str], mixed_dir: Path, geo: Geography) -> None:
    """An ambiguous commune lists the candidates and exits 2."""
    code, out, err = _run(capsys, mixed_dir, geo, "Saint-Vallier", "foncier", as_json=False)
    assert code == 2 and out == ""
    assert "plusieurs communes correspondent à « Saint-Vallier »" in err
    assert "71486  Saint-Vallier (71)  CU Le Creusot Montceau-les-Mines" in err
    code, out, _ = _run(capsys, mixed_dir, geo, "71600", "foncier")  # Paray and nine others
    data = json.loads(out)
    assert code == 2 and data["error"] == "ambiguous"
    assert PARAY in [c["insee"] for c in data["candidates"]]


def test_route_command_text(capsys: pytest.CaptureFixture[str], mixed_dir: Path, geo: Geography) -> None:
    """The text output, in French, names territory, partners and reasons; nothing is sent."""
    code, out, _ = _run(capsys, mixed_dir, geo, PARAY, "recrutement", as_json=False)
    assert code == 0
    assert "Territoire : Mix Industrie (ti-mix)" in out
    assert "Partenaires destinataires :" in out
    assert "  - France Travail Paray-le-Monial <ft-paray@example.org> — France Travail, " \
           "niveau intercommunalité, accusé de réception sous 2 jours ouvrés" in out
    assert "rien n'a été envoyé" in out
    code, out, _ = _run(capsys, mixed_dir, geo, DIGOIN, "foncier", as_json=False)
    assert "la demande va au chef de projet" in out and "Maud Mix <maud@example.org>" in out
    code, out, _ = _run(capsys, mixed_dir, geo, BREST, "foncier", as_json=False)
    assert "aucun Territoire d'industrie configuré ne couvre cette commune" in out


def test_route_command_refusals(capsys: pytest.CaptureFixture[str], mixed_dir: Path,
                                geo: Geography, tmp_path: Path) -> None:
    """Unknown theme, commune or size band: exit 2; a directory that does not load: exit 1."""
    code, _, err = _run(capsys, mixed_dir, geo, PARAY, "cuisine")
    assert code == 2 and "thème inconnu « cuisine »" in err
    code, _, err = _run(capsys, mixed_dir, geo, "Xyzzyville", "foncier")
    assert code == 2 and "commune introuvable « Xyzzyville »" in err
    code, _, err = _run(capsys, mixed_dir, geo, PARAY, "foncier", size_band="99")
    assert code == 2 and "tranche d'effectif inconnue « 99 »" in err
    (tmp_path / "x.yaml").write_text("id: ti-x\n", encoding="utf-8")
    code, _, err = _run(capsys, tmp_path, geo, PARAY, "foncier")
    assert code == 1 and "x.yaml: name : champ obligatoire manquant" in err
