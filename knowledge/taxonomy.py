"""Shared vocabularies: need themes and partner kinds, with their French labels."""

from __future__ import annotations

__all__ = ["PARTNER_KINDS", "THEMES", "THEME_KEYS", "THEME_NOUNS", "theme_label", "theme_noun"]

# Intake theme keys (stable identifiers stored in the database) and the label a user reads.
THEMES: dict[str, str] = {
    "recrutement": "Recruter",
    "competences": "Former, développer les compétences",
    "foncier": "Foncier, locaux, terrain",
    "innovation": "Innover, moderniser",
    "mutualisation": "Mutualiser avec d'autres entreprises",
    "financement": "Financer un projet",
    "transition": "Transition écologique, énergie",
    "export": "Exporter",
    "mobilite": "Mobilité, logement des salariés",
    "difficulte": "Difficultés de l'entreprise",
    "autre": "Autre besoin",
}
THEME_KEYS: tuple[str, ...] = tuple(THEMES)
# The same themes as nouns, for subjects and listings ("[TI-2026-0042] Recrutement — …").
THEME_NOUNS: dict[str, str] = {
    "recrutement": "Recrutement",
    "competences": "Compétences et formation",
    "foncier": "Foncier",
    "innovation": "Innovation",
    "mutualisation": "Mutualisation",
    "financement": "Financement",
    "transition": "Transition écologique",
    "export": "Export",
    "mobilite": "Mobilité des salariés",
    "difficulte": "Difficultés",
    "autre": "Autre besoin",
}

# Partner kinds known to routing and to the knowledge-base cards' `contact` field.
PARTNER_KINDS: dict[str, str] = {
    "france_travail": "France Travail",
    "opco": "OPCO (opérateur de compétences)",
    "cci": "Chambre de commerce et d'industrie (CCI)",
    "cma": "Chambre de métiers et de l'artisanat (CMA)",
    "region": "Conseil régional",
    "bpifrance": "Bpifrance",
    "ademe": "ADEME",
    "epf": "Établissement public foncier (EPF)",
    "epci_dev_eco": "Service développement économique de l'intercommunalité",
    "transitions_pro": "Transitions Pro",
    "dreets": "DREETS",
    "business_france": "Business France / Team France Export",
    "banque_des_territoires": "Banque des Territoires",
    "animateur": "Chef de projet Territoire d'industrie",
    "anct": "ANCT",
    "agence_dev_eco": "Agence de développement économique",
    "cnam": "Cnam",
    "education_nationale": "Éducation nationale (campus des métiers et qualifications)",
    "uimm": "UIMM",
    "afpa": "Afpa",
    "banque_de_france": "Banque de France (médiation du crédit)",
    "dgfip": "Finances publiques (DGFiP)",
    "action_logement": "Action Logement",
    "agefiph": "Agefiph et Cap emploi",
}


def theme_label(key: str) -> str:
    """Return the French label of a theme key, or the key itself when unknown."""
    return THEMES.get(key, key)


def theme_noun(key: str) -> str:
    """Return the theme as a noun (subjects, listings), or the key itself when unknown."""
    return THEME_NOUNS.get(key, key)
