"""Tests of bot.services.extract: intake fields pulled out of a firm's e-mail body."""

from __future__ import annotations

import dataclasses

import pytest

from bot.services.extract import Extracted, extract_fields
from knowledge.geography import Geography, default_geography

# Valid numbers (check digits verified by python-stdnum); the "BAD" one has its last digit
# changed.
SIRET_A = "73282932000074"
SIRET_B = "44306184100013"
SIRET_C = "51234567900017"
SIRET_BAD = "73282932000075"
SIREN_D = "800123457"


def fields(**values: str) -> Extracted:
    """An Extracted with the given fields and None everywhere else."""
    base = {f.name: None for f in dataclasses.fields(Extracted)}
    base.update(values)
    return Extracted(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def geo() -> Geography:
    """The shipped communes table."""
    return default_geography()


CASES: list[tuple[str, str, Extracted]] = [
    (
        "full_email",
        """Bonjour,

Je suis le gérant de la SARL Martin et Fils, située à Paray-le-Monial. Nous cherchons deux
soudeurs pour la rentrée.
SIRET : 732 829 320 00074
Tél : 03 85 81 10 92

Cordialement
Jean Martin""",
        fields(
            siret=SIRET_A,
            commune_hint="Paray-le-Monial",
            phone="+33385811092",
            firm_name="Martin et Fils",
        ),
    ),
    (
        "phone_is_not_a_postcode",
        "Vous pouvez me joindre au 03 85 81 10 92 en journée.",
        fields(phone="+33385811092"),
    ),
    (
        "siret_with_bad_check_digit_is_ignored",
        "Notre SIRET : 732 829 320 00075, merci de nous rappeler.",
        fields(),
    ),
    ("postcode_alone", "71600", fields(postcode="71600")),
    (
        "postcode_alone_on_its_line",
        "Bonjour,\nnous sommes dans le Charolais.\n71600\nMerci",
        fields(postcode="71600"),
    ),
    (
        "departement_in_parentheses",
        "Entreprise basée à Paray le Monial (71), 25 salariés.",
        fields(commune_hint="Paray le Monial (71)"),
    ),
    (
        "name_and_departement_alone",
        "Paray le Monial (71)",
        fields(commune_hint="Paray le Monial (71)"),
    ),
    ("siren_only", "SIREN : 800 123 457", fields(siren=SIREN_D)),
    (
        "siren_in_rcs_line",
        "SAS au capital de 10 000 €, RCS Chalon-sur-Saône 443 061 841.\n"
        "Tél. +33 (0)3 85 81 10 92",
        fields(siren="443061841", phone="+33385811092"),
    ),
    (
        "siret_wins_over_siren",
        f"SIREN 800 123 457, SIRET de l'établissement {SIRET_B}",
        fields(siret=SIRET_B),
    ),
    ("siret_with_dots", "siret 732.829.320.00074", fields(siret=SIRET_A)),
    ("siret_siren_then_nic", "SIRET 732829320 00074", fields(siret=SIRET_A)),
    (
        "compact_siret_and_international_phone",
        f"Tel +33 6 12 34 56 78 / SIRET {SIRET_C}",
        fields(siret=SIRET_C, phone="+33612345678"),
    ),
    (
        "amounts_are_not_postcodes",
        "Nous avons un budget de 25000 € et une commande de 10 000 pièces par an.",
        fields(),
    ),
    (
        "bare_figure_is_not_a_postcode",
        "Chiffre d'affaires 2024 : environ 85000, ticket support 48213 toujours ouvert.",
        fields(),
    ),
    (
        "reference_number_is_not_a_postcode",
        "Commande n° 71600 livrée le 03/12.",
        fields(),
    ),
    (
        "signature_block",
        """Bonjour,
nous sommes une PME de mécanique et cherchons un tourneur.

Cordialement
Pierre Durand
MECANIQUE DU CHAROLAIS
3 rue de la Gare
71120 Charolles
pierre.durand@meca-charolais.fr""",
        fields(
            postcode="71120",
            commune_hint="Charolles",
            email="pierre.durand@meca-charolais.fr",
            firm_name="MECANIQUE DU CHAROLAIS",
        ),
    ),
    (
        "cs_box_and_cedex",
        "Mâcon Développement\nCS 70012\n71012 Mâcon Cedex",
        fields(postcode="71012", commune_hint="Mâcon"),
    ),
    (
        "upper_case_address",
        "12 rue des Forges\n71300 MONTCEAU LES MINES",
        fields(postcode="71300", commune_hint="MONTCEAU LES MINES"),
    ),
    (
        "sms_style",
        "slt jsuis a digoin 71160 mon num 0612345678",
        fields(postcode="71160", commune_hint="digoin", phone="+33612345678"),
    ),
    (
        "person_after_a_is_not_a_commune",
        "J'ai parlé à Marie de votre dispositif, elle m'a conseillé de vous écrire.",
        fields(),
    ),
    (
        "courtesy_a_is_not_a_commune",
        "Je reste à votre disposition, nous sommes à l'écoute de vos propositions.",
        fields(),
    ),
    (
        "societe_and_basee_a",
        "la société Dupont Mécanique, basée à Gueugnon, recherche un apprenti.",
        fields(commune_hint="Gueugnon", firm_name="Dupont Mécanique"),
    ),
    (
        "generic_firm_words_give_no_name",
        "Notre entreprise de mécanique fabrique des pièces pour l'automobile.",
        fields(),
    ),
    (
        "two_upper_case_words_may_be_the_signer",
        "Merci de me rappeler.\nCordialement\nJEAN MARTIN\nGérant",
        fields(),
    ),
    (
        "upper_case_line_outside_signature",
        "URGENT\nNous cherchons un soudeur.",
        fields(),
    ),
    (
        "au_creusot",
        "Notre société, MECA 71, est implantée au Creusot. Contact : contact@meca71.fr",
        fields(commune_hint="Le Creusot", email="contact@meca71.fr", firm_name="MECA 71"),
    ),
    (
        "commune_de_with_departement",
        "L'usine est située sur la commune de Saint-Vallier (71).",
        fields(commune_hint="Saint-Vallier (71)"),
    ),
    (
        "postcode_in_parentheses",
        "Atelier à Saint-Vallier (71230), 12 salariés, tél 06.12.34.56.78, "
        "mail: jean.dupont@gmail.com",
        fields(
            postcode="71230",
            commune_hint="Saint-Vallier",
            phone="+33612345678",
            email="jean.dupont@gmail.com",
        ),
    ),
    (
        "quoted_name_after_legal_form",
        "La SAS « Les Ateliers du Charolais » recrute un chaudronnier.",
        fields(firm_name="Les Ateliers du Charolais"),
    ),
    (
        "legal_form_after_name",
        "Dupont Industries SAS, 4 avenue de la République, 71200 Le Creusot",
        fields(postcode="71200", commune_hint="Le Creusot", firm_name="Dupont Industries"),
    ),
    (
        "etablissements",
        f"Je vous écris de la part des Établissements Bernard à Charolles (71120) : "
        f"SIRET {SIRET_B}.",
        fields(siret=SIRET_B, postcode="71120", commune_hint="Charolles", firm_name="Bernard"),
    ),
    (
        "colloquial_sur",
        "nous sommes sur Montceau depuis 1985",
        fields(commune_hint="Montceau"),
    ),
    (
        "spaced_postcode",
        "Adresse : 5 route de Digoin, 71 600 Paray-le-Monial",
        fields(postcode="71600", commune_hint="Paray-le-Monial"),
    ),
    (
        "first_phone_and_first_email",
        "Tél. 03 85 57 00 00 - Fax 03 85 57 00 01\n"
        "Écrire à Compta@Lamy-Fonderie.FR ou rh@lamy-fonderie.fr",
        fields(phone="+33385570000", email="Compta@lamy-fonderie.fr"),
    ),
    (
        "siret_digits_are_not_a_phone",
        "SIRET 732 829 320 00074 – pas de téléphone fixe pour l'instant.",
        fields(siret=SIRET_A),
    ),
    (
        "date_is_not_a_postcode",
        "Disponible à partir du 01/07/2025, à 14h30.",
        fields(),
    ),
    ("empty", "", fields()),
]


@pytest.mark.parametrize(("name", "text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_extract(name: str, text: str, expected: Extracted, geo: Geography) -> None:
    """Every field of each snippet, exactly."""
    assert extract_fields(text, geography=geo) == expected


def test_many_cases() -> None:
    """At least 25 snippets, and every field found by at least two of them."""
    assert len(CASES) >= 25
    for field in dataclasses.fields(Extracted):
        found = [c for c in CASES if getattr(c[2], field.name) is not None]
        assert len(found) >= 2, field.name


def test_default_geography_is_used() -> None:
    """Without a geography argument, the shipped table checks the commune names."""
    assert extract_fields("Entreprise située à Gueugnon.").commune_hint == "Gueugnon"
    assert extract_fields("Entreprise située à Xyzzyville.").commune_hint is None


def test_geography_decides_what_a_commune_is() -> None:
    """A commune unknown to the given table is not a hint, even after 'située à'."""
    empty = Geography([])
    found = extract_fields("Entreprise située à Gueugnon, 71130 Gueugnon.", geography=empty)
    assert found.commune_hint is None
    assert found.postcode == "71130"  # "71130 Gueugnon": a capitalised word follows
