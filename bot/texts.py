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
KB_RELOAD_PROBLEMS = "Fiches ignorées car invalides :\n{problems}"


# --- Animator ------------------------------------------------------------------------------
FIRM_ARTISAN = "artisan (répertoire des métiers)"
FIRM_NOT_ARTISAN = "non artisan"
FIRM_OPCO = "{opco} (IDCC {idcc})"
FIRM_OPCO_UNKNOWN = "OPCO à déterminer (IDCC {idcc})"
FIRM_CLOSED = "⚠️ fermé selon l'annuaire"
FIRM_SOURCE = "source {source}, {date}"
