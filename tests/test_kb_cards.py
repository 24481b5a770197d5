"""Programme cards: loading, checks with ``file:line`` reporting, the ``kb check`` command."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from test_kb_helpers import line_of, write_card
from typer.testing import CliRunner

from knowledge import cards as cards_module
from knowledge.cards import (
    CARDS_DIR,
    CardError,
    CardProblem,
    check_cards,
    load_card,
    load_cards,
)
from knowledge.kb_cli import kb_app

PROGRAMME_IDS = {
    "territoires_industrie",
    "fonds_vert_ti_transition_ecologique",
    "manufactures_de_proximite",
    "transitions_collectives",
    "periode_de_reconversion",
    "fne_formation",
    "poec",
    "poei",
    "afest",
    "campus_connectes",
    "ecoles_de_production",
    "vte",
    "fonds_friches_recyclage_foncier",
    "zan",
    "diag_decarbonaction",
    "france_2030_industrie",
    "bpifrance_prets_industrie",
    "accelerateurs_bpifrance",
    "ecologie_industrielle_territoriale",
    "industrie_du_futur_regional",
    "aide_embauche_alternants",
    "team_france_export",
    "tremplin_ademe",
}


# -- shipped cards ------------------------------------------------------------------------


def test_shipped_cards_pass_the_check() -> None:
    problems = check_cards()
    assert problems == [], "\n".join(str(p) for p in problems)


def test_every_programme_has_a_card() -> None:
    ids = {card.id for card in load_cards().cards}
    assert PROGRAMME_IDS <= ids


def test_default_directory_is_the_package_cards_folder() -> None:
    assert CARDS_DIR == Path(__file__).resolve().parents[1] / "knowledge" / "cards"
    assert len(load_cards(None).cards) == len(load_cards(CARDS_DIR).cards)


# -- one good card ---------------------------------------------------------------------------


def test_load_card_reads_every_field(tmp_path: Path) -> None:
    path = write_card(
        tmp_path,
        "aide_test",
        body="## En bref\n\nTexte.",
        ends="2026-12-31",
        successor="autre_aide",
        uncertain=["Montant à vérifier"],
    )
    card = load_card(path)
    assert card.id == "aide_test"
    assert card.aliases == ("ATRS",)
    assert card.themes == ("recrutement",)
    assert card.conditions == ("Être une PME", "Recruter en CDI")
    assert card.contact == ("france_travail",)
    assert card.valid_as_of == date(2026, 1, 15)
    assert card.ends == date(2026, 12, 31)
    assert card.successor == "autre_aide"
    assert card.uncertain == ("Montant à vérifier",)
    assert card.body == "## En bref\n\nTexte."
    assert card.path == path
    assert card.line_of["id"] == line_of(path, "id:")
    assert card.line_of["keywords.1"] == line_of(path, "- pénurie de soudeurs")


def test_is_current_until_the_end_date(tmp_path: Path) -> None:
    card = load_card(write_card(tmp_path, "aide_test", ends="2025-12-31", successor="x"))
    assert card.is_current(date(2025, 12, 31))
    assert not card.is_current(date(2026, 1, 1))
    forever = load_card(write_card(tmp_path, "autre", title="Autre aide", aliases=["AA"]))
    assert forever.is_current(date(2100, 1, 1))


def test_card_is_hashable_and_comparable(tmp_path: Path) -> None:
    path = write_card(tmp_path, "aide_test")
    assert load_card(path) == load_card(path)
    assert len({load_card(path), load_card(path)}) == 1


# -- broken cards: each kind is reported with file:line ------------------------------------


def _problems(folder: Path) -> list[CardProblem]:
    return check_cards(folder)


def _only(problems: list[CardProblem], path: Path) -> list[CardProblem]:
    return [p for p in problems if p.path == path]


@pytest.mark.parametrize(
    ("fields", "prefix", "fragment"),
    [
        ({"summary": None}, None, "« summary » manquant"),
        ({"themes": ["recrutement", "cuisine"]}, "- cuisine", "thème inconnu « cuisine »"),
        ({"contact": ["opco", "mairie"]}, "- mairie", "type de contact inconnu « mairie »"),
        ({"valid_as_of": "2026-02-30"}, "valid_as_of:", "date invalide"),
        ({"ends": "bientôt"}, "ends:", "date invalide"),
        ({"valid_as_of": "2999-01-01"}, "valid_as_of:", "dans le futur"),
        ({"successor": "n_existe_pas", "ends": "2025-01-01"}, "successor:", "introuvable"),
        ({"successor": "autre_aide"}, "successor:", "sans date de fin"),
        ({"sources": ["https://ok.example.org/a", "htp:/faux"]}, "- htp:/faux", "URL invalide"),
        ({"sources": ["https://sans-point/chemin"]}, "- https://sans-point", "URL invalide"),
        ({"summary": "Trop court."}, "summary:", "résumé trop court"),
        ({"summary": "x" * 600}, "summary:", "résumé trop long"),
        ({"keywords": []}, "keywords:", "« keywords » ne doit pas être vide"),
        ({"conditions": "pas une liste"}, "conditions:", "doit être une liste"),
        ({"title": ["liste"]}, "title:", "doit être un texte"),
        ({"couleur": "bleu"}, "couleur:", "champ inconnu « couleur »"),
    ],
)
def test_each_broken_field_is_reported_at_its_line(
    tmp_path: Path, fields: dict[str, object], prefix: str | None, fragment: str
) -> None:
    write_card(tmp_path, "autre_aide", title="Autre aide", aliases=["AA"])
    path = write_card(tmp_path, "aide_test", **fields)
    problems = _only(_problems(tmp_path), path)
    assert problems, f"no problem reported for {fields}"
    matching = [p for p in problems if fragment in p.message]
    assert matching, [str(p) for p in problems]
    expected_line = 1 if prefix is None else line_of(path, prefix)
    assert matching[0].line == expected_line
    assert str(matching[0]) == f"{path}:{expected_line}: {matching[0].message}"


def test_id_must_match_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "mauvais_nom.md"
    write_card(tmp_path, "aide_test").rename(path)
    [problem] = _problems(tmp_path)
    assert problem.path == path
    assert problem.line == line_of(path, "id:")
    assert "nom du fichier" in problem.message


def test_yaml_syntax_error_is_located(tmp_path: Path) -> None:
    path = tmp_path / "aide_test.md"
    path.write_text(
        "---\nid: aide_test\ntitle: Aide\nthemes: [recrutement\nsummary: x\n---\nCorps\n",
        encoding="utf-8",
    )
    [problem] = _problems(tmp_path)
    assert problem.path == path
    assert problem.line in (4, 5)
    assert "YAML invalide" in problem.message


def test_missing_front_matter(tmp_path: Path) -> None:
    path = tmp_path / "aide_test.md"
    path.write_text("# Juste du Markdown\n", encoding="utf-8")
    [problem] = _problems(tmp_path)
    assert (problem.path, problem.line) == (path, 1)
    assert "en-tête YAML absent" in problem.message


def test_duplicate_key_and_empty_body(tmp_path: Path) -> None:
    path = write_card(tmp_path, "aide_test", body="")
    text = path.read_text(encoding="utf-8").replace("themes:", "title: Encore\nthemes:", 1)
    path.write_text(text, encoding="utf-8")
    messages = {p.message.split(" (")[0]: p.line for p in _problems(tmp_path)}
    assert messages["champ « title » en double"] == line_of(path, "title: Encore")
    assert any("corps Markdown vide" in m for m in messages)


def test_duplicate_ids_keep_the_first_card(tmp_path: Path) -> None:
    # within one folder the id/file-name rule already prevents it; cards gathered from two
    # folders go through the same cross-card check
    first = load_card(write_card(tmp_path / "a", "aide_test"))
    second = load_card(write_card(tmp_path / "b", "aide_test", title="Autre", aliases=["ZZ"]))
    kept, problems = cards_module._cross_check([first, second])
    assert kept == [first]
    [problem] = problems
    assert problem.path == second.path
    assert problem.line == second.line("id")
    assert "déjà utilisé" in problem.message


def test_names_must_designate_a_single_card(tmp_path: Path) -> None:
    write_card(tmp_path, "aide_a", title="Prime à l'embauche", aliases=["PAE"])
    clash = write_card(tmp_path, "aide_b", title="Autre", aliases=["pae", "Prime a l’embauche"])
    problems = _problems(tmp_path)
    assert [(p.path, p.line) for p in problems] == [
        (clash, line_of(clash, "- pae")),
        (clash, line_of(clash, "- Prime a")),
    ]
    assert "aide_a" in problems[0].message


def test_spelling_variants_of_a_cards_own_name_are_fine(tmp_path: Path) -> None:
    write_card(tmp_path, "vte", title="Volontariat (VTE)", aliases=["VTE", "vte", "V.T.E."])
    assert _problems(tmp_path) == []


def test_archived_card_may_end_before_its_review_date(tmp_path: Path) -> None:
    write_card(tmp_path, "ancienne", title="Ancienne", aliases=["AN"], ends="2020-01-01")
    assert _problems(tmp_path) == []


def test_broken_card_is_skipped_and_others_stay(tmp_path: Path) -> None:
    good = write_card(tmp_path, "aide_ok", title="Bonne aide", aliases=["BA"])
    bad = write_card(tmp_path, "aide_ko", themes=["inconnu"], title="Mauvaise", aliases=["MA"])
    card_set = load_cards(tmp_path)
    assert [c.path for c in card_set.cards] == [good]
    assert [p.path for p in card_set.problems] == [bad]
    with pytest.raises(CardError) as error:
        load_card(bad)
    assert f"{bad}:" in str(error.value)


def test_missing_folder_is_a_problem(tmp_path: Path) -> None:
    [problem] = check_cards(tmp_path / "absent")
    assert "introuvable" in problem.message


# -- command line --------------------------------------------------------------------------


def test_check_command_ok(tmp_path: Path) -> None:
    write_card(tmp_path, "aide_ok")
    result = CliRunner().invoke(kb_app, ["check", "--cards", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "1 fiches valides" in result.output


def test_check_command_lists_problems_and_fails(tmp_path: Path) -> None:
    bad = write_card(tmp_path, "aide_ko", contact=["inconnu"])
    result = CliRunner().invoke(kb_app, ["check", "--cards", str(tmp_path)])
    assert result.exit_code == 1
    line = line_of(bad, "- inconnu")
    assert f"aide_ko.md:{line}: type de contact inconnu « inconnu »" in result.output


def test_check_command_on_shipped_cards() -> None:
    result = CliRunner().invoke(kb_app, ["check"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("fiches valides")
