"""A stand-in for the API Recherche d'entreprises, on 127.0.0.1 in the test's event loop.

Responses are shaped like the recorded examples in the research notes: one result per
SIREN/SIRET query, `matching_etablissements` holding only the queried SIRET, `siege` the
head office, `{"erreur": ...}` bodies on errors, the `[NON-DIFFUSIBLE]` mask.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = [
    "ARTISAN_SIREN",
    "HEAD_SIRET",
    "MASKED_SIRET",
    "MIXED_SIRET",
    "NOT_FOUND_SIRET",
    "PARTIAL_SIRET",
    "PLANT_SIRET",
    "SIREN",
    "STUB_SIRET",
    "RechercheDouble",
    "Reply",
]

# Valid Luhn numbers, invented (no real firm).
SIREN = "732829320"
HEAD_SIRET = "73282932000017"  # head office, Lyon
PLANT_SIRET = "73282932000025"  # the plant, Paray-le-Monial
ARTISAN_SIREN = "412165540"
MIXED_SIRET = "52398710500013"
NOT_FOUND_SIRET = "81234567600017"
STUB_SIRET = "90011223600014"
MASKED_SIRET = "60044556300015"
PARTIAL_SIRET = "77889900500012"


def _etab(siret: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "siret": siret, "est_siege": False, "ancien_siege": False, "etat_administratif": "A",
        "statut_diffusion_etablissement": "O", "activite_principale": None,
        "adresse": None, "code_postal": None, "commune": None, "libelle_commune": None,
        "epci": None, "tranche_effectif_salarie": None, "annee_tranche_effectif_salarie": None,
        "caractere_employeur": "O", "liste_idcc": [], "liste_rge": None, "nom_commercial": None,
    }
    base.update(fields)
    return base


def _siege(siret: str, **fields: Any) -> dict[str, Any]:
    # Only `siege` carries the crafts register code and the coordinates.
    base: dict[str, Any] = {"est_siege": True, "activite_principale_registre_metier": None,
                            "departement": None, "region": None, "coordonnees": None}
    return _etab(siret, **(base | fields))


def _result(siren: str, name: str | None, siege: dict[str, Any], **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "siren": siren, "nom_complet": name, "nom_raison_sociale": name, "sigle": None,
        "nombre_etablissements": 1, "nombre_etablissements_ouverts": 1, "siege": siege,
        "activite_principale": siege.get("activite_principale"),
        "section_activite_principale": "C", "nature_juridique": "5710",
        "categorie_entreprise": "PME", "etat_administratif": "A", "statut_diffusion": "O",
        "tranche_effectif_salarie": None, "annee_tranche_effectif_salarie": "2023",
        "date_creation": "2004-03-01", "dirigeants": [], "matching_etablissements": [],
        "finances": None,
        "complements": {"convention_collective_renseignee": True, "liste_idcc": [],
                        "est_entrepreneur_individuel": False, "est_ess": False},
    }
    base.update(fields)
    return base


def _page(*results: dict[str, Any]) -> dict[str, Any]:
    return {"results": list(results), "total_results": len(results), "page": 1,
            "per_page": 10, "total_pages": 1 if results else 0}


HEAD = _siege(HEAD_SIRET, activite_principale="70.10Z",
              adresse="12 RUE DE LA REPUBLIQUE 69002 LYON", code_postal="69002",
              commune="69382", libelle_commune="LYON 2EME",
              departement="69", region="84", tranche_effectif_salarie="03", liste_idcc=["1486"])
PLANT = _etab(PLANT_SIRET, activite_principale="24.51Z",
              adresse="ZI DES CHARMES 71600 PARAY-LE-MONIAL", code_postal="71600",
              commune="71342", libelle_commune="PARAY-LE-MONIAL", epci="247100589",
              tranche_effectif_salarie="21", liste_idcc=["3248"])
FOUNDRY = _result(SIREN, "FONDERIE DU CHAROLAIS (FDC)", HEAD, activite_principale="24.51Z",
                  tranche_effectif_salarie="22", nombre_etablissements=2,
                  complements={"convention_collective_renseignee": True,
                               "liste_idcc": ["1486", "3248"],
                               "est_entrepreneur_individuel": False})

ROOFER_HEAD = _siege(ARTISAN_SIREN + "00011", activite_principale="43.91A",
                     activite_principale_registre_metier="4391AZ",
                     adresse="LD LA VAURELLE 81170 CORDES-SUR-CIEL", code_postal="81170",
                     commune="81069", libelle_commune="CORDES-SUR-CIEL",
                     tranche_effectif_salarie="03", liste_idcc=["2420", "2609", "1596"])
ROOFER = _result(ARTISAN_SIREN, "COUVERTURES DU CAUSSE", ROOFER_HEAD, activite_principale="43.91A",
                 section_activite_principale="F", tranche_effectif_salarie="03",
                 complements={"convention_collective_renseignee": True,
                              "liste_idcc": ["1596", "2420", "2609"]})

MIXED_HEAD = _siege(MIXED_SIRET, activite_principale="20.16Z", code_postal="71100",
                    commune="71076", libelle_commune="CHALON-SUR-SAONE",
                    tranche_effectif_salarie="12", liste_idcc=["44", "1486"])
MIXED = _result("523987105", "POLYMERES DE BOURGOGNE", MIXED_HEAD, tranche_effectif_salarie="12",
                matching_etablissements=[_etab(MIXED_SIRET, est_siege=True,
                                               activite_principale="20.16Z",
                                               code_postal="71100", commune="71076",
                                               libelle_commune="CHALON-SUR-SAONE",
                                               tranche_effectif_salarie="12",
                                               liste_idcc=["44", "1486"])])

# The all-null stub some numbers return.
STUB = {"siren": None, "nom_complet": None, "nom_raison_sociale": None, "sigle": None,
        "siege": {}, "matching_etablissements": [], "complements": None,
        "tranche_effectif_salarie": None, "activite_principale": None}

_MASK = "[NON-DIFFUSIBLE]"
# A sole trader who opposed publication: name and address masked, commune and NAF visible.
MASKED_HEAD = _siege(MASKED_SIRET, activite_principale="25.62B", adresse=_MASK, code_postal="71120",
                     commune="71106", libelle_commune="CHAROLLES", coordonnees=_MASK,
                     statut_diffusion_etablissement="P", tranche_effectif_salarie="NN")
MASKED = _result("600445563", _MASK, MASKED_HEAD, nom_raison_sociale=_MASK, statut_diffusion="P",
                 nature_juridique="1000", tranche_effectif_salarie="NN",
                 matching_etablissements=[copy.deepcopy(MASKED_HEAD) | {"est_siege": True}])
# A company with partial diffusion: only the sigle and address details are masked.
PARTIAL_HEAD = _siege(PARTIAL_SIRET, activite_principale="25.11Z", adresse=_MASK,
                      code_postal="71300", commune="71306", libelle_commune="MONTCEAU-LES-MINES",
                      statut_diffusion_etablissement="P", tranche_effectif_salarie="11",
                      liste_idcc=["9999"])
PARTIAL = _result("778899005", "CHAUDRONNERIE MONTCELLIENNE", PARTIAL_HEAD, sigle=_MASK,
                  statut_diffusion="P", tranche_effectif_salarie="11",
                  matching_etablissements=[copy.deepcopy(PARTIAL_HEAD)])


def default_fixtures() -> dict[str, dict[str, Any]]:
    """q → response body for the numbers the tests use."""
    return {
        PLANT_SIRET: _page(FOUNDRY | {"matching_etablissements": [PLANT]}),
        HEAD_SIRET: _page(FOUNDRY | {"matching_etablissements": [HEAD | {"est_siege": True}]}),
        SIREN: _page(FOUNDRY),
        ARTISAN_SIREN: _page(ROOFER),
        MIXED_SIRET: _page(MIXED),
        NOT_FOUND_SIRET: _page(),
        STUB_SIRET: _page(STUB),
        MASKED_SIRET: _page(MASKED),
        PARTIAL_SIRET: _page(PARTIAL),
    }


@dataclass
class Reply:
    """A scripted answer: status, JSON body, headers, and a delay before answering."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


SERVER_ERROR = {"erreur": "Une erreur inattendue s'est produite. Veuillez réessayer plus tard."}


class RechercheDouble:
    """`GET /search` like the real API; `script()` queues special replies (429, 500, slow)."""

    def __init__(self) -> None:
        self.fixtures = default_fixtures()
        self.requests: list[dict[str, Any]] = []
        self._script: list[Reply] = []
        self._closing = asyncio.Event()
        self._arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order, before the fixtures."""
        self._script.extend(replies)

    async def start(self) -> None:
        """Listen on a free loopback port."""
        app = web.Application()
        app.router.add_get("/search", self._search)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        """Release slow handlers and close the server."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for_requests(self, count: int) -> None:
        """Wait until `count` requests have arrived (callers bound it with asyncio.timeout)."""
        while len(self.requests) < count:
            self._arrived.clear()
            await self._arrived.wait()

    async def _search(self, request: web.Request) -> web.Response:
        self.requests.append({"query": dict(request.query), "headers": dict(request.headers)})
        self._arrived.set()
        if self._script:
            reply = self._script.pop(0)
            if reply.delay:
                try:
                    await asyncio.wait_for(self._closing.wait(), reply.delay)
                except TimeoutError:
                    pass
            return web.json_response(reply.body, status=reply.status, headers=reply.headers)
        q = "".join(request.query.get("q", "").split())
        if not q and "code_commune" not in request.query:
            return web.json_response(
                {"erreur": "Veuillez indiquer au moins un paramètre de recherche."}, status=400
            )
        if q.isdigit() and len(q) in (9, 14):
            return web.json_response(self.fixtures.get(q, _page()))
        raw = request.query.get("q", "")
        return web.json_response(self._text_search(raw, request.query.get("code_commune")))

    def _text_search(self, q: str, commune: str | None) -> dict[str, Any]:
        """Name search over the fixture firms, with `matching_etablissements` in the commune."""
        firms = {SIREN: (FOUNDRY, [HEAD, PLANT]), ARTISAN_SIREN: (ROOFER, [ROOFER_HEAD])}
        words = q.upper().split()
        results = []
        for result, etabs in firms.values():
            if not all(w in (result["nom_complet"] or "") for w in words):
                continue
            here = [e for e in etabs if commune is None or e["commune"] == commune]
            if here:
                results.append(result | {"matching_etablissements": here})
        return _page(*results)
