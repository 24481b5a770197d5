"""Every text a user reads, in French, kept together so it can be reviewed.

Texts are Telegram HTML: anything coming from a user must go through `esc()` before
being put into one of them.
"""

from __future__ import annotations

from html import escape

__all__ = ["esc"]


def esc(value: object) -> str:
    """Escape user-provided text for Telegram's HTML parse mode."""
    return escape(str(value), quote=False)


# --- Re-asks ---------------------------------------------------------------------------
BAD_COMPANY_NAME = "Ce nom ne semble pas valide. Indiquez le nom de l'entreprise (2 à 120 caractères)."
BAD_SIRET_LENGTH = (
    "Un SIRET compte 14 chiffres ; j'en lis {count}. "
    "Vous pouvez aussi passer cette question."
)
BAD_SIREN_GIVEN = (
    "Ce numéro à 9 chiffres est un SIREN. "
    "Il me faut le SIRET de l'établissement (14 chiffres), ou passez cette question."
)
BAD_SIRET_CHECKSUM = (
    "Ce SIRET n'est pas valide (la clé de contrôle ne correspond pas). "
    "Vérifiez-le, ou passez cette question."
)
BAD_SIRET_CHARS = "Un SIRET ne contient que des chiffres. Vérifiez-le, ou passez cette question."
DESCRIPTION_TOO_SHORT = (
    "Votre description est un peu courte ({count} caractères). "
    "Ajoutez quelques détails : 20 caractères au moins."
)
DESCRIPTION_TOO_LONG = (
    "Votre description fait {count} caractères ; la limite est de {limit}. "
    "Pouvez-vous la raccourcir ?"
)
BAD_PHONE = "Ce numéro ne semble pas valide. Indiquez un numéro français, par exemple 06 12 34 56 78."
BAD_EMAIL = "Cette adresse e-mail ne semble pas valide. Vérifiez-la, par exemple nom@entreprise.fr."
STALE_BUTTON = "Cette question est déjà passée."

# --- Commands ---------------------------------------------------------------------------
UNKNOWN_COMMAND = "Je ne connais pas cette commande."

# --- Command menu (setMyCommands): command -> description ---------------------------
COMMANDS: dict[str, str] = {
    "start": "Déposer une demande",
    "mesdemandes": "Suivre mes demandes",
    "mesrdv": "Mes rendez-vous à venir",
    "annuler": "Abandonner la demande en cours",
    "aide": "Aide",
    "supprimer": "Effacer mes données",
}
# Shown, in addition, to animators only (command scope of their own chat).
ANIMATOR_COMMANDS: dict[str, str] = {
    "demandes": "Demandes ouvertes du territoire",
    "rdv": "RDV à venir ; /rdv TI-… pour en proposer un",
    "stats": "Le territoire sur 7 jours",
    "radar": "Besoins communs à plusieurs entreprises",
    "demande": "Voir une demande (ex. /demande TI-2026-0042)",
    "recharger": "Recharger les fiches de la base de connaissances",
}
TECHNICAL_ERROR = (
    "Désolé, un incident technique m'empêche de répondre. "
    "Réessayez dans quelques minutes."
)

# --- Knowledge base ---------------------------------------------------------------------
KB_CONDITIONS_TITLE = "<b>Conditions principales</b>"
KB_VALID_AS_OF = "Informations valables au {date}, à vérifier avant toute démarche."
KB_ENDED = "Ce dispositif a pris fin le {date}."
KB_ENDED_SUCCESSOR = "Il est remplacé par : <b>{title}</b>."
KB_NOT_SURE = "Je ne suis pas sûr de bien comprendre. Voici les fiches les plus proches :"
KB_OUT_OF_SCOPE = (
    "Je n'ai pas de fiche sur ce sujet, et je préfère ne pas deviner.\n"
    "Je peux transmettre votre question à l'équipe Territoires d'industrie.\n"
    "Pour déposer une demande, tapez /start."
)
KB_FORWARDED = (
    "Votre question est transmise à l'équipe Territoires d'industrie.\n"
    "Pour être recontacté, déposez une demande avec /start."
)
KB_REJECTED = "Merci, c'est noté : cette réponse sera revue pour améliorer les fiches."
KB_OTHER_CHOICES = "Voici d'autres pistes :"
KB_DETAILS_WHO = "<b>Pour qui</b>"
KB_DETAILS_WHAT = "<b>Ce que vous obtenez</b>"
KB_DETAILS_HOW = "<b>Comment faire</b>"
KB_DETAILS_UNCERTAIN = "<b>À vérifier</b>"
KB_DETAILS_SOURCES = "<b>Sources</b>"
KB_CONTACTS_TITLE = "<b>Qui contacter pour « {title} »</b>"
KB_CONTACTS_ANIMATOR = (
    "Le chef de projet Territoire d'industrie de votre territoire peut vous orienter : "
    "déposez une demande et il vous recontacte."
)
KB_UNKNOWN_CARD = "Cette fiche n'est plus disponible."
BTN_KB_DETAILS = "Détails"
BTN_KB_CONTACTS = "Qui contacter"
BTN_KB_NOT_THAT = "Ce n'est pas ça"
BTN_KB_APPLY = "Déposer une demande"
BTN_KB_FORWARD = "Transmettre ma question"
KB_RELOAD_PROBLEMS = "Fiches ignorées car invalides :\n{problems}"


def esc_attr(value: object) -> str:
    """Escape a value for an HTML attribute (quotes included)."""
    return escape(str(value), quote=True)

# --- Animator ------------------------------------------------------------------------------
FIRM_ARTISAN = "artisan (répertoire des métiers)"
FIRM_NOT_ARTISAN = "non artisan"
FIRM_OPCO = "{opco} (IDCC {idcc})"
FIRM_OPCO_UNKNOWN = "OPCO à déterminer (IDCC {idcc})"
FIRM_CLOSED = "⚠️ fermé selon l'annuaire"
FIRM_SOURCE = "source {source}, {date}"
ANIMATORS_ONLY = "Cette commande est réservée aux chefs de projet Territoire d'industrie."

# --- Mutualisation radar -------------------------------------------------------------------
RADAR_EMPTY = "Aucun besoin commun repéré parmi les demandes ouvertes de votre territoire."
RADAR_TITLE = "<b>Besoins communs</b> ({count}) · visibles de vous seul"
RADAR_GROUP = (
    "<b>{count} entreprises {reason}</b>\n"
    "{lines}\n"
    "<b>Programmes collectifs</b> : {programmes}"
)
RADAR_LINE = "• {reference} · {firm} ({commune})"
RADAR_NO_PROGRAMME = "aucun dans la base"
BTN_RADAR_DISMISS = "Écarter"
BTN_RADAR_PROPOSE = "Proposer aux entreprises"
RADAR_DISMISSED = "Groupe écarté : il ne sera plus proposé."
RADAR_PROPOSED = "Proposé à {count} entreprise(s). Je vous transmets leurs réponses."
RADAR_GONE = "Ce groupe a changé depuis (demande close ou nouvelle) : tapez /radar."
RADAR_FIRM_ASK = (
    "D'autres entreprises du territoire ont un besoin proche du vôtre ({reference}). "
    "Le chef de projet propose une action commune ({programmes}).\n"
    "Acceptez-vous que le nom de votre entreprise leur soit communiqué ?"
)
BTN_RADAR_YES = "Oui, d'accord"
BTN_RADAR_NO = "Non merci"
RADAR_FIRM_YES = "Merci. Le chef de projet vous recontacte pour organiser la suite."
RADAR_FIRM_NO = "C'est noté : votre nom ne sera pas communiqué. Votre demande suit son cours."
RADAR_ANSWER_FOR_ANIMATOR = "{firm} ({reference}) {answer} que son nom soit communiqué au groupe."
RADAR_ACCEPTS = "accepte"
RADAR_REFUSES = "refuse"
