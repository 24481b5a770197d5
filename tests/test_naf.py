"""The NAF rév. 2 table and its lookups (`knowledge/naf.py`, `knowledge/data/naf_rev2.csv`)."""

from __future__ import annotations

import csv
import re
from collections import Counter

import pytest

from knowledge.naf import NAF_FILE, is_industry, naf_label, naf_section, naf_table, norm_naf


def _rows() -> list[dict[str, str]]:
    with NAF_FILE.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_file_has_the_expected_header() -> None:
    with NAF_FILE.open(encoding="utf-8", newline="") as handle:
        assert next(csv.reader(handle)) == ["code", "label", "section"]


def test_table_has_all_732_sous_classes() -> None:
    # INSEE's NAF rév. 2 has 732 sous-classes (level 5); fewer means rows were lost.
    assert len(_rows()) == 732
    assert len(naf_table()) == 732


def test_codes_are_unique_and_well_formed() -> None:
    codes = [row["code"] for row in _rows()]
    assert len(set(codes)) == len(codes)
    assert all(re.fullmatch(r"\d{2}\.\d{2}[A-Z]", code) for code in codes)
    assert codes == sorted(codes)


def test_labels_and_sections_are_clean() -> None:
    for row in _rows():
        label = row["label"]
        assert label and label == label.strip() and "  " not in label, row
        assert "\n" not in label and "’" not in label, row
        assert re.fullmatch(r"[A-U]", row["section"]), row


def test_section_sizes_match_insee() -> None:
    # Per-section counts of NAF rév. 2 sous-classes; they sum to 732.
    sizes = Counter(row["section"] for row in _rows())
    assert sizes == {
        "A": 39, "B": 15, "C": 259, "D": 8, "E": 9, "F": 38, "G": 116, "H": 30, "I": 11,
        "J": 33, "K": 19, "L": 6, "M": 22, "N": 35, "O": 11, "P": 12, "Q": 28, "R": 16,
        "S": 21, "T": 3, "U": 1,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("code", "label"),
    [
        ("16.23Z", "Fabrication de charpentes et d'autres menuiseries"),
        ("24.51Z", "Fonderie de fonte"),
        ("25.62B", "Mécanique industrielle"),
        ("25.62A", "Décolletage"),
        ("25.11Z", "Fabrication de structures métalliques et de parties de structures"),
        ("20.16Z", "Fabrication de matières plastiques de base"),
        ("10.71A", "Fabrication industrielle de pain et de pâtisserie fraîche"),
        ("28.22Z", "Fabrication de matériel de levage et de manutention"),
        ("22.29A", "Fabrication de pièces techniques à base de matières plastiques"),
        ("25.50A", "Forge, estampage, matriçage ; métallurgie des poudres"),
        ("25.73A", "Fabrication de moules et modèles"),
        (
            "33.20C",
            "Conception d'ensemble et assemblage sur site industriel d'équipements de contrôle des processus industriels",
        ),
        ("20.13A", "Enrichissement et retraitement de matières nucléaires"),
        ("70.10Z", "Activités des sièges sociaux"),
        ("43.91A", "Travaux de charpente"),
        ("78.10Z", "Activités des agences de placement de main-d'œuvre"),
        (
            "88.10B",
            "Accueil ou accompagnement sans hébergement d'adultes handicapés ou de personnes âgées",
        ),
        ("99.00Z", "Activités des organisations et organismes extraterritoriaux"),
    ],
)
def test_official_labels(code: str, label: str) -> None:
    assert naf_label(code) == label


@pytest.mark.parametrize("raw", ["16.23Z", "1623Z", "16.23z", " 16.23Z ", "1623z", "\t16.23Z\n"])
def test_codes_are_normalised(raw: str) -> None:
    assert norm_naf(raw) == "16.23Z"
    assert naf_label(raw) == "Fabrication de charpentes et d'autres menuiseries"
    assert naf_section(raw) == "C"


@pytest.mark.parametrize(
    "raw",
    [None, "", "   ", "16.23", "16.2Z", "162.3Z", "16-23Z", "16.23ZZ", "43.22AB", "74.1A", "abcde"],
)
def test_malformed_codes_give_none(raw: str | None) -> None:
    assert norm_naf(raw) is None
    assert naf_label(raw) is None
    assert naf_section(raw) is None
    assert is_industry(raw) is False


@pytest.mark.parametrize("code", ["00.00Z", "16.23A", "99.99Z", "62.01A"])
def test_well_formed_but_unknown_codes_give_none(code: str) -> None:
    assert norm_naf(code) == code
    assert naf_label(code) is None
    assert naf_section(code) is None
    assert is_industry(code) is False


@pytest.mark.parametrize(
    ("code", "section"),
    [("16.23Z", "C"), ("43.91A", "F"), ("70.10Z", "M"), ("01.11Z", "A"), ("97.00Z", "T")],
)
def test_sections(code: str, section: str) -> None:
    assert naf_section(code) == section


@pytest.mark.parametrize(
    ("code", "industry"),
    [
        ("10.11Z", True),  # first manufacturing code (division 10)
        ("16.23Z", True),
        ("2562b", True),
        ("33.20D", True),  # last manufacturing code (division 33)
        ("08.12Z", False),  # quarrying is section B, not C
        ("35.11Z", False),  # electricity is section D
        ("43.91A", False),  # roof framing is construction (F), unlike 16.23Z
        ("46.69B", False),  # wholesale of industrial supplies is trade (G)
        ("70.10Z", False),  # a manufacturer's head office is coded M
    ],
)
def test_is_industry(code: str, industry: bool) -> None:
    assert is_industry(code) is industry


def test_industry_is_exactly_divisions_10_to_33() -> None:
    industrial = {code for code in naf_table() if is_industry(code)}
    assert industrial == {code for code in naf_table() if 10 <= int(code[:2]) <= 33}


def test_table_is_loaded_once() -> None:
    assert naf_table() is naf_table()
