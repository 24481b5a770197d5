"""The IDCC → OPCO table (`knowledge/data/idcc_opco.yaml`): which training fund a firm has.

A firm's collective agreements (IDCC codes) decide its OPCO. The table is data with its
source and date; a code missing from it, or agreements pointing at two OPCO, give no
answer, and the need's OPCO is left for the animator to decide.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

__all__ = ["OPCO_FILE", "OpcoTable", "load_opco_table", "norm_idcc"]

OPCO_FILE = Path(__file__).resolve().parent / "data" / "idcc_opco.yaml"


def norm_idcc(value: str) -> str:
    """IDCCs come as "0044" or "44"; the table keys have no leading zeros."""
    return value.strip().lstrip("0") or "0"


@dataclass(frozen=True, slots=True)
class OpcoTable:
    """IDCC → OPCO key, and each OPCO key's official name."""

    by_idcc: Mapping[str, str]
    names: Mapping[str, str]
    no_agreement: frozenset[str]
    source: str
    valid_as_of: str

    def opco_key_for(self, idccs: tuple[str, ...]) -> str | None:
        """The one OPCO key all known IDCCs agree on; None when unknown or ambiguous."""
        keys = {
            self.by_idcc[code]
            for code in (norm_idcc(i) for i in idccs)
            if code not in self.no_agreement and code in self.by_idcc
        }
        return keys.pop() if len(keys) == 1 else None

    def opco_for(self, idccs: tuple[str, ...]) -> str | None:
        """The one OPCO name all known IDCCs agree on; None when unknown or ambiguous."""
        key = self.opco_key_for(idccs)
        return self.names[key] if key else None

    def key_for_name(self, name: str | None) -> str | None:
        """The key of an OPCO given its official name ("OPCO 2i" → "opco-2i")."""
        if not name:
            return None
        for key, known in self.names.items():
            if known.casefold() == name.casefold():
                return key
        return None

    def unmapped(self, idccs: tuple[str, ...]) -> tuple[str, ...]:
        """The agreements of a firm that the table cannot place (to show the animator)."""
        return tuple(
            code for code in (norm_idcc(i) for i in idccs)
            if code not in self.no_agreement and code not in self.by_idcc
        )


@cache
def load_opco_table(path: Path = OPCO_FILE) -> OpcoTable:
    """Read the IDCC → OPCO table (cached: it only changes with a release)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    names = {str(key): str(value["name"]) for key, value in data["opcos"].items()}
    by_idcc = {norm_idcc(str(k)): str(v) for k, v in data["idcc"].items()}
    unknown = sorted(set(by_idcc.values()) - set(names))
    if unknown:
        raise ValueError(f"{path.name}: OPCO inconnus dans la table idcc : {unknown}")
    return OpcoTable(
        by_idcc=by_idcc,
        names=names,
        no_agreement=frozenset(norm_idcc(str(c)) for c in data.get("no_agreement", [])),
        source=str(data["source"]),
        valid_as_of=str(data["valid_as_of"]),
    )
