"""A firm's public facts as the "API Recherche d'entreprises" describes them.

Pure reading of one directory record: field mapping, masked fields, NAF label, OPCO. The
HTTP client and its database cache live in `bot.directory` (network and storage are not
knowledge's business).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from knowledge.naf import naf_label
from knowledge.opco import OpcoTable, load_opco_table
from knowledge.routing import FirmFacts
from knowledge.territories import SIZE_BANDS

__all__ = ["SOURCE", "FirmRecord", "OpcoTable", "load_opco_table", "record_from_result"]

SOURCE = "recherche-entreprises.api.gouv.fr"
# The literal the API puts in masked fields of non-diffusible firms (R123-232 code de commerce).
NON_DIFFUSIBLE = "[NON-DIFFUSIBLE]"
NO_EMPLOYEE_LABEL = "Pas de salarié déclaré"


@dataclass(frozen=True, slots=True)
class FirmRecord:
    """Public facts about a firm (one establishment for a SIRET, the head office for a SIREN).

    Any field may be None: the API omits, masks or lags on many of them.
    """

    siren: str
    siret: str | None
    name: str | None
    commune_insee: str | None
    commune_name: str | None
    postcode: str | None
    naf: str | None
    naf_label: str | None
    # Legal unit's INSEE headcount band: eligibility rules are about the firm, not the site.
    size_band: str | None
    size_label: str | None
    # The establishment's own band, when the record is for an establishment.
    establishment_size_band: str | None
    artisan: bool | None
    idccs: tuple[str, ...]
    opco: str | None
    is_head_office: bool | None
    source: str
    fetched_at: datetime
    diffusible: bool = True
    etat_administratif: str | None = None

    def facts(self) -> FirmFacts:
        """What routing needs from this record."""
        return FirmFacts(
            size_band=self.size_band,
            artisan=self.artisan,
            naf=self.naf,
            idcc=self.idccs,
            opco=load_opco_table().key_for_name(self.opco),
        )

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (cache payload, CLI output)."""
        data = asdict(self)
        data["idccs"] = list(self.idccs)
        data["fetched_at"] = self.fetched_at.astimezone(UTC).isoformat()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FirmRecord:
        """The inverse of `to_json`; unknown keys are ignored so old cache rows still load."""
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in known}
        values["idccs"] = tuple(values.get("idccs") or ())
        values["fetched_at"] = datetime.fromisoformat(str(values["fetched_at"])).astimezone(UTC)
        return cls(**values)


def _clean(value: Any) -> str | None:
    """A string field, with the non-diffusible mask and blanks read as unknown."""
    if value is None:
        return None
    text = str(value).strip()
    if not text or text == NON_DIFFUSIBLE:
        return None
    return text


def _size_label(band: str | None) -> str | None:
    if band is None:
        return None
    if band == "NN":
        return NO_EMPLOYEE_LABEL
    return SIZE_BANDS.get(band)


def _artisan(siege: Mapping[str, Any]) -> bool | None:
    """Registered at the Répertoire des métiers: only the head office carries the NAFA code."""
    if not siege or "activite_principale_registre_metier" not in siege:
        return None
    return _clean(siege.get("activite_principale_registre_metier")) is not None


def record_from_result(
    result: Mapping[str, Any],
    *,
    siret: str | None,
    fetched_at: datetime,
    opco_table: OpcoTable | None = None,
) -> FirmRecord | None:
    """Build a record from one API result; None when it is a stub or the name is masked.

    With `siret`, the facts come from that establishment in `matching_etablissements`, never
    from `siege`, which is the head office and may be elsewhere. Without it: the head office.
    """
    name = _clean(result.get("nom_complet"))
    siren = _clean(result.get("siren"))
    if name is None or siren is None:
        return None
    siege: Mapping[str, Any] = result.get("siege") or {}
    if siret is not None:
        matching = result.get("matching_etablissements") or []
        etab = next((e for e in matching if e.get("siret") == siret), None)
        if etab is None and siege.get("siret") == siret:
            etab = siege
        if etab is None:
            return None
        idccs = tuple(etab.get("liste_idcc") or ())
    else:
        etab = siege
        complements = result.get("complements") or {}
        idccs = tuple(complements.get("liste_idcc") or etab.get("liste_idcc") or ())
    table = opco_table or load_opco_table()
    size_band = _clean(result.get("tranche_effectif_salarie"))
    naf = _clean(etab.get("activite_principale")) or _clean(result.get("activite_principale"))
    is_head = etab.get("est_siege")
    diffusible = result.get("statut_diffusion") != "P" and (
        etab.get("statut_diffusion_etablissement") != "P"
    )
    return FirmRecord(
        siren=siren,
        siret=_clean(etab.get("siret")),
        name=name,
        commune_insee=_clean(etab.get("commune")),
        commune_name=_clean(etab.get("libelle_commune")),
        postcode=_clean(etab.get("code_postal")),
        naf=naf,
        # The API gives only the code; the label comes from INSEE's nomenclature.
        naf_label=naf_label(naf),
        size_band=size_band,
        size_label=_size_label(size_band),
        establishment_size_band=_clean(etab.get("tranche_effectif_salarie")),
        artisan=_artisan(siege),
        idccs=idccs,
        opco=table.opco_for(idccs),
        is_head_office=bool(is_head) if is_head is not None else None,
        source=SOURCE,
        fetched_at=fetched_at,
        diffusible=diffusible,
        etat_administratif=_clean(etab.get("etat_administratif")),
    )
