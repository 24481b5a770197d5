"""Every text a user reads, in French, kept together so it can be reviewed.

Texts are Telegram HTML: anything coming from a user must go through `esc()` before
being put into one of them.
"""

from __future__ import annotations

from html import escape

from bot.messages import without_bidi

__all__ = ["esc"]


def esc(value: object) -> str:
    """Escape user-provided text for Telegram's HTML parse mode (bidi controls dropped)."""
    return escape(without_bidi(str(value)), quote=False)


# --- Start and consent -----------------------------------------------------------------
WELCOME = (
    "Bonjour, je suis <b>Relais</b>, l'assistant des Territoires d'industrie.\n"
    "Je recueille le besoin de votre entreprise (recrutement, formation, foncier, "
    "financement…) et je le transmets à la bonne personne de votre territoire."
)
PRIVACY_NOTICE = (
    "<b>Vos données</b>\n"
    "Je vais vous demander : le nom et le SIRET de l'entreprise, sa commune, "
    "votre besoin et un moyen de vous recontacter.\n"
    "Qui les voit : le chef de projet Territoire d'industrie de votre territoire "
    "et les partenaires à qui il transmet votre demande.\n"
    "Durée : 3 ans après le dernier échange. Vous pouvez tout effacer à tout moment "
    "avec /supprimer.\n"
    "Rien n'est enregistré avant votre accord."
)
CONSENT_QUESTION = "Acceptez-vous ces conditions ?"
BTN_CONSENT_YES = "J'accepte"
BTN_CONSENT_NO = "Je refuse"
CONSENT_REFUSED = (
    "C'est noté : rien n'a été enregistré.\n"
    "Vous pouvez revenir quand vous voulez avec /start."
)
NEED_CONSENT_FIRST = "Pour commencer, tapez /start."
WELCOME_BACK = "Reprenons où nous en étions."

# --- Questions -------------------------------------------------------------------------
ASK_COMPANY_NAME = "Quel est le nom de votre entreprise ?"
ASK_SIRET = (
    "Quel est le numéro SIRET de l'établissement (14 chiffres) ?\n"
    "Il figure sur vos factures et sur l'avis de situation Insee."
)
ASK_SIRET_LOOKUP = (
    "Quel est le numéro SIRET de l'établissement (14 chiffres) ?\n"
    "Avec lui, je retrouve le nom et l'activité de l'entreprise : moins de questions."
)
BTN_NO_SIRET = "Je ne l'ai pas sous la main"
FIRM_FOUND = "J'ai trouvé : <b>{name}</b>, {commune}{details}.\nC'est bien votre établissement ?"
FIRM_FOUND_SIREN = (
    "J'ai trouvé l'entreprise <b>{name}</b>, siège à {commune}{details}.\n"
    "C'est bien votre entreprise ?"
)
FIRM_CLOSED_WARNING = "Attention : l'annuaire indique cet établissement comme fermé."
BTN_FIRM_YES = "Oui"
BTN_FIRM_NO = "Non, corriger"
FIRM_NOT_FOUND = "Je ne trouve pas ce SIRET dans l'annuaire public. Je le garde tel quel."
FIRM_CORRECT = "D'accord. Corrigez le numéro, ou passez cette question."
ASK_FIRM_LOCATION = "Dans quelle commune se trouve l'établissement concerné ? (nom ou code postal)"
ASK_FIRM_CHOICE = "J'ai trouvé ces entreprises à {commune}. Est-ce l'une d'elles ?"
BTN_NONE_OF_THESE_FIRMS = "Aucune de ces entreprises"
FIRM_UNKNOWN_NAME = "nom non diffusé"
ASK_LOCATION = "Dans quelle commune se trouve l'établissement ? (nom ou code postal)"
ASK_LOCATION_CHOICE = "Plusieurs communes correspondent. Laquelle est la bonne ?"
BTN_NONE_OF_THESE_COMMUNES = "Aucune de ces communes"
ASK_THEME = "Quel est votre besoin principal ?"
ASK_DESCRIPTION = (
    "Décrivez votre besoin en quelques phrases.\n"
    "Par exemple : le poste à pourvoir, la formation visée, la surface recherchée."
)
ASK_URGENCY = "Pour quand avez-vous besoin d'une réponse ?"
ASK_CONTACT_METHOD = "Comment préférez-vous être recontacté ?"
ASK_PHONE = "À quel numéro de téléphone ?"
ASK_EMAIL = "À quelle adresse e-mail ?"
ASK_EDIT_FIELD = "Que souhaitez-vous modifier ?"
BTN_BACK_TO_SUMMARY = "Revenir au récapitulatif"

URGENCY_LABELS: dict[str, str] = {
    "week": "Cette semaine",
    "month": "Dans le mois",
    "quarter": "Dans les 3 mois",
    "none": "Pas d'urgence",
}
CONTACT_LABELS: dict[str, str] = {
    "telegram": "Ici, sur Telegram",
    "phone": "Par téléphone",
    "email": "Par e-mail",
}

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
LOCATION_NOT_FOUND = "Je ne trouve pas la commune « {query} ». Vérifiez l'orthographe ou donnez le code postal."
LOCATION_TOO_SHORT = "Indiquez le nom de la commune ou son code postal à 5 chiffres."
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
USE_BUTTONS = "Merci de répondre avec l'un des boutons ci-dessous."
MEDIA_NOT_UNDERSTOOD = {
    "sticker": "Je ne sais pas lire les autocollants.",
    "photo": "Je ne sais pas encore lire les photos.",
    "voice": "Je ne sais pas écouter les messages vocaux.",
    "video": "Je ne sais pas regarder les vidéos.",
    "document": "Je ne sais pas encore lire les documents.",
    "location": "Je ne peux pas utiliser une position GPS.",
    "contact": "Je ne peux pas utiliser une fiche contact.",
    "other": "Je ne comprends pas ce type de message.",
}
MEDIA_ANSWER_IN_TEXT = "Répondez par écrit, s'il vous plaît."
STALE_BUTTON = "Cette question est déjà passée."

# --- Summary and outcome ---------------------------------------------------------------
SUMMARY_TITLE = "<b>Récapitulatif de votre demande</b>"
SUMMARY_QUESTION = "Tout est correct ?"
BTN_CONFIRM = "Envoyer la demande"
BTN_EDIT = "Modifier"
BTN_CANCEL = "Annuler"
FIELD_LABELS: dict[str, str] = {
    "company_name": "Entreprise",
    "siret": "SIRET",
    "location": "Commune",
    "theme": "Besoin",
    "description": "Description",
    "urgency": "Échéance",
    "contact": "Contact",
    "activity": "Activité",
}
NOT_GIVEN = "non renseigné"
NEED_RECORDED = "Merci ! Votre demande est enregistrée sous la référence <b>{reference}</b>."
NEXT_STEP_ANIMATOR = (
    "{animator}, chef de projet du Territoire d'industrie {territory}, la reçoit "
    "et vous recontactera sous {days} jours ouvrés."
)
NEXT_STEP_NO_TERRITORY = (
    "Aucun animateur Territoire d'industrie ne couvre encore la commune de {commune}. "
    "Votre demande est conservée et sera transmise dès qu'un territoire la couvrira."
)
AFTER_RECORDED = "Suivez vos demandes avec /mesdemandes."

# --- Commands ---------------------------------------------------------------------------
CANCELLED = "Demande annulée : rien n'a été enregistré.\nTapez /start pour recommencer."
NOTHING_TO_CANCEL = "Aucune demande n'est en cours. Tapez /start pour en déposer une."
HELP = (
    "<b>Aide</b>\n"
    "/start : déposer une demande\n"
    "/mesdemandes : suivre vos demandes\n"
    "/mesrdv : vos rendez-vous à venir\n"
    "/annuler : abandonner la demande en cours\n"
    "/supprimer : effacer vos données\n"
    "Vous pouvez aussi poser une question sur les aides aux entreprises."
)
MY_NEEDS_EMPTY = "Vous n'avez encore déposé aucune demande. Tapez /start pour en déposer une."
MY_NEEDS_TITLE = "<b>Vos demandes</b>"
MY_NEEDS_LINE = "{reference} · {theme} · {status} · {date}"
STATUS_LABELS: dict[str, str] = {
    "awaiting_info": "en attente d'informations",
    "submitted": "reçue",
    "routed": "transmise",
    "acknowledged": "prise en charge",
    "in_progress": "en cours",
    "closed_helped": "close",
    "closed_not_helped": "close",
    "cancelled": "annulée",
}
DELETE_QUESTION = (
    "Voulez-vous effacer toutes vos données personnelles ?\n"
    "Vos demandes seront anonymisées ; seules des statistiques anonymes seront conservées."
)
BTN_DELETE_YES = "Oui, tout effacer"
BTN_DELETE_NO = "Non, garder"
DELETED = "Vos données personnelles ont été effacées. Merci d'avoir utilisé Relais."
DELETE_KEPT = "C'est noté, rien n'a été effacé."
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
KB_INTAKE_IN_PROGRESS = "Vous avez déjà une demande en cours : reprenons-la."
KB_THEME_PREFILLED = "Thème retenu : <b>{theme}</b>."
KB_UNKNOWN_CARD = "Cette fiche n'est plus disponible."
BTN_KB_DETAILS = "Détails"
BTN_KB_CONTACTS = "Qui contacter"
BTN_KB_NOT_THAT = "Ce n'est pas ça"
BTN_KB_APPLY = "Déposer une demande"
BTN_KB_FORWARD = "Transmettre ma question"
KB_RELOADED = "Base de connaissances rechargée : {count} fiches."
KB_RELOAD_PROBLEMS = "Fiches ignorées car invalides :\n{problems}"
KB_RELOAD_FORBIDDEN = "Cette commande est réservée aux animateurs."


def esc_attr(value: object) -> str:
    """Escape a value for an HTML attribute (quotes included)."""
    return escape(str(value), quote=True)
KB_FORWARDED_TO_ANIMATOR = (
    "<b>Question transmise par Relais</b> (sans réponse dans les fiches) :\n« {question} »"
)

# --- Routing: what the firm is told ------------------------------------------------------
ROUTED_TO = "Elle est transmise à : {partners}."
ROUTED_FALLBACK = "Le chef de projet la lit et choisira le bon interlocuteur."
TAKEN_BY_FOR_FIRM = (
    "Bonne nouvelle : {who} prend en charge votre demande {reference}.\n"
    "Vous serez contacté {contact}."
)
CONTACT_HOW: dict[str, str] = {
    "telegram": "ici, sur Telegram",
    "phone": "par téléphone",
    "email": "par e-mail",
}
CLOSED_FOR_FIRM = "Votre demande {reference} est close. Merci d'avoir utilisé Relais."

# --- Animator ------------------------------------------------------------------------------
ANIMATOR_CARD_TITLE = "<b>Nouvelle demande {reference}</b>"
ANIMATOR_CARD_LINES = (
    "<b>Entreprise</b> : {firm}{siret}\n"
    "{facts}"
    "<b>Commune</b> : {commune} ({insee}) · {epci}\n"
    "<b>Besoin</b> : {theme} · {urgency}\n"
    "<b>Contact</b> : {contact}\n"
    "<b>Description</b> :\n{description}"
)
ANIMATOR_FIRM_FACTS = "<b>Fiche publique</b> : {facts}\n"
FIRM_ARTISAN = "artisan (répertoire des métiers)"
FIRM_NOT_ARTISAN = "non artisan"
FIRM_OPCO = "{opco} (IDCC {idcc})"
FIRM_OPCO_UNKNOWN = "OPCO à déterminer (IDCC {idcc})"
FIRM_CLOSED = "⚠️ fermé selon l'annuaire"
FIRM_SOURCE = "source {source}, {date}"
ANIMATOR_ROUTED_TITLE = "<b>Transmise à</b> :"
ANIMATOR_FALLBACK = "<b>Aucun partenaire ne correspond</b> : à vous de choisir (Réaffecter)."
ANIMATOR_STATUS = "<b>Statut</b> : {status}"
BTN_TAKE = "Je prends"
BTN_REASSIGN = "Réaffecter"
BTN_CLOSE = "Clore"
BTN_CLOSE_HELPED = "Aidée"
BTN_CLOSE_NOT_HELPED = "Non aidée"
BTN_CLOSE_CANCELLED = "Sans suite"
BTN_DONE = "Terminé"
BTN_PREVIOUS = "◀ Précédentes"
BTN_NEXT = "Suivantes ▶"
TAKEN_BY = "✅ Prise en charge par {who}."
CLOSED_AS = "Close : {reason}."
ASK_CLOSE_REASON = "Pourquoi clore la demande {reference} ?"
ASK_REASSIGN = "À quels partenaires transmettre la demande {reference} ? (un appui par partenaire)"
REASSIGNED = "Transmise aussi à {partner}."
ALREADY_ROUTED = "Déjà transmise à ce partenaire."
NOT_YOUR_TERRITORY = "Cette demande n'est pas de votre territoire."
ANIMATORS_ONLY = "Cette commande est réservée aux chefs de projet Territoire d'industrie."
NEED_NOT_FOUND = "Je ne trouve pas la demande {reference}."
NEED_USAGE = "Précisez la référence, par exemple : /demande TI-2026-0042"
OPEN_NEEDS_TITLE = "<b>Demandes ouvertes</b> ({count}) · page {page}/{pages}"
OPEN_NEEDS_EMPTY = "Aucune demande ouverte sur votre territoire."
HISTORY_TITLE = "<b>Historique</b>"
STATUS_CHANGE_LINE = "{date} · {status}{actor}"
ROUTING_LINE = "• {name} : {reason}"
ANIMATOR_COMMANDS_HELP = (
    "/demandes : demandes ouvertes\n/demande TI-2026-0042 : une demande\n"
    "/rdv : RDV à venir\n/rdv TI-2026-0042 : proposer un RDV"
)
EMAIL_REFUSED = (
    "<b>E-mail non distribué</b> à {to}\n« {subject} »\nMotif : {error}\n"
    "Vérifiez l'adresse du partenaire dans l'annuaire du territoire."
)
TELEGRAM_UNDELIVERABLE = (
    "<b>Message Telegram non distribué</b> à l'entreprise de la demande {reference} "
    "({firm}).\nMotif : {error}\nContactez-la par un autre moyen si besoin."
)

# --- Meetings -------------------------------------------------------------------------------
BTN_PROPOSE_MEETING = "Proposer un RDV"
MEETING_ASK_WHEN = (
    "RDV avec {firm} ({reference}) : quand ?\n"
    "Par exemple « jeudi 14h30 », « 12/01 à 9h » ou « demain 10h »."
)
MEETING_ASK_WHEN_MOVE = (
    "Déplacer le RDV avec {firm} ({reference}), prévu {slot} : nouvelle date ?\n"
    "Par exemple « jeudi 14h30 » ou « 12/01 à 9h »."
)
WHEN_ERRORS: dict[str, str] = {
    "unrecognised": "Je n'ai pas compris cette date.",
    "no_time": "Il manque l'heure ({detail}).",
    "no_date": "Il manque le jour ({detail}).",
    "impossible": "Cette date n'existe pas ({detail}).",
    "past": "Cette date est déjà passée ({detail}).",
    "ambiguous": (
        "Je ne suis pas sûr de comprendre ({detail}). "
        "Écrivez la date en entier, par exemple « 14/01/2027 à 14h30 »."
    ),
    "nonexistent": "Cette heure n'existe pas ce jour-là : on passe à l'heure d'été ({detail}).",
    "repeated": (
        "Cette heure existe deux fois ce jour-là : on passe à l'heure d'hiver ({detail}). "
        "Choisissez une autre heure."
    ),
    "too_far": "C'est dans plus de 18 mois ({detail}). Choisissez une date plus proche.",
}
MEETING_UNUSUAL = "Attention, ce créneau tombe {reasons} :\n{slot}\nLe garder quand même ?"
UNUSUAL_EARLY_LATE = "en dehors de 7h–20h"
UNUSUAL_WEEKEND = "un week-end"
UNUSUAL_HOLIDAY = "un jour férié ({name})"
BTN_KEEP_SLOT = "Oui, garder ce créneau"
BTN_CHANGE_SLOT = "Changer la date"
MEETING_ASK_DURATION = "{slot_day} à {time}. Combien de temps dure le RDV ?"
DURATION_BUTTONS: dict[int, str] = {30: "30 min", 60: "1 h", 90: "1 h 30", 120: "2 h"}
BAD_DURATION = "Je n'ai pas compris cette durée. Choisissez un bouton ou écrivez par exemple « 45 min »."
MEETING_ASK_PLACE = "Où a lieu le RDV ? Écrivez l'adresse, ou collez le lien de la visioconférence."
BTN_PLACE_FIRM = "Dans l'entreprise ({commune})"
PLACE_AT_FIRM = "Dans les locaux de l'entreprise, {commune}"
PLACE_VIDEO = "Visioconférence"
BAD_PLACE = "Indiquez un lieu (3 à 300 caractères) ou un lien https://."
MEETING_ASK_WHO = "Qui inviter ? Touchez un nom pour le cocher ou le décocher, puis « Valider »."
BTN_WHO_FIRM = "L'entreprise ({firm})"
BTN_WHO_DONE = "Valider"
MEETING_NOBODY = "Cochez au moins une personne à inviter."
MEETING_RECAP = (
    "<b>RDV à envoyer</b> · {reference}\n"
    "<b>Quand</b> : {slot}\n"
    "<b>Où</b> : {place}\n"
    "<b>Invités</b> : {who}"
)
BTN_SEND_INVITE = "Envoyer l'invitation"
BTN_SEND_UPDATE = "Envoyer le changement"
BTN_ABANDON = "Abandonner"
MEETING_ABANDONED = "Proposition de RDV abandonnée."
MEETING_SENT = "📅 Invitation envoyée pour {slot}. Je vous préviens dès que l'entreprise répond."
MEETING_SENT_NO_FIRM = "📅 Invitation envoyée pour {slot}. Les rappels partiront à l'heure."
MEETING_MOVED = "📅 RDV déplacé : {slot}. Tout le monde est prévenu."
MEETING_ASK_CANCEL = "Annuler le RDV du {slot} avec {firm} ? Tous les invités seront prévenus."
BTN_CANCEL_MEETING = "Annuler le RDV"
BTN_CONFIRM_CANCEL = "Oui, annuler le RDV"
BTN_KEEP_MEETING = "Non, le garder"
MEETING_CANCELLED = "RDV du {slot} annulé. Tout le monde est prévenu."
MEETING_KEPT = "Le RDV est maintenu."
BTN_MOVE_MEETING = "Déplacer"
MEETING_NOT_FOUND = "Ce RDV n'existe plus."
MEETING_ALREADY_CANCELLED = "Ce RDV est déjà annulé."
MEETING_NEED_CLOSED = "Cette demande est close : pas de nouveau RDV."
RDV_USAGE = "Précisez la demande, par exemple : /rdv TI-2026-0042"
MEETING_STATUS_LABELS: dict[str, str] = {
    "proposed": "en attente de l'entreprise",
    "confirmed": "confirmé",
    "other_slot": "autre créneau demandé",
    "declined": "refusé par l'entreprise",
    "cancelled": "annulé",
}
MEETINGS_TITLE = "<b>RDV à venir</b> ({count})"
MEETINGS_EMPTY = "Aucun RDV à venir sur votre territoire."
MEETING_LINE = "• {slot} · {firm} ({reference}) · {status}"
MEETING_DETAIL = (
    "<b>RDV</b> · {reference} · {firm}\n"
    "<b>Quand</b> : {slot}\n"
    "<b>Où</b> : {place}\n"
    "<b>Invités</b> : {who}\n"
    "<b>Statut</b> : {status}"
)
# The firm's side.
MEETING_FOR_FIRM = (
    "<b>Proposition de rendez-vous</b> ({reference})\n"
    "<b>Quand</b> : {slot}\n"
    "<b>Où</b> : {place}\n"
    "<b>Avec</b> : {who}\n\n"
    "Ce créneau vous convient-il ?"
)
MEETING_MOVED_FOR_FIRM = (
    "<b>Rendez-vous déplacé</b> ({reference})\n"
    "<b>Nouveau créneau</b> : {slot}\n"
    "<b>Où</b> : {place}\n\n"
    "Ce créneau vous convient-il ?"
)
MEETING_CANCELLED_FOR_FIRM = "Le rendez-vous du {slot} ({reference}) est annulé."
BTN_FIRM_CONFIRM = "Je confirme"
BTN_FIRM_OTHER_SLOT = "Proposer un autre créneau"
BTN_FIRM_DECLINE = "Je ne peux pas"
FIRM_CONFIRMED_ACK = "Merci, c'est noté : rendez-vous {slot}. Je vous enverrai un rappel."
FIRM_ASK_OTHER_SLOT = (
    "Quel créneau vous conviendrait ? Écrivez-le simplement, "
    "par exemple « mardi matin » ou « jeudi après 14h »."
)
FIRM_OTHER_SLOT_SENT = "Merci, je transmets. Le chef de projet vous proposera un autre créneau."
FIRM_DECLINED_ACK = "C'est noté. Le chef de projet reviendra vers vous."
BAD_OTHER_SLOT = "Écrivez le créneau qui vous conviendrait (3 à 300 caractères)."
MY_MEETINGS_TITLE = "<b>Vos rendez-vous à venir</b>"
MY_MEETINGS_EMPTY = "Vous n'avez aucun rendez-vous à venir."
MY_MEETING_LINE = "• {slot} · {place} ({reference}) · {status}"
# What the animator learns of the firm's answer.
MEETING_FIRM_CONFIRMED = "✅ {firm} confirme le RDV du {slot} ({reference})."
MEETING_FIRM_OTHER_SLOT = "🔁 {firm} demande un autre créneau que le {slot} ({reference})."
MEETING_FIRM_OTHER_SLOT_TEXT = "🔁 {firm} propose, pour le RDV {reference} : « {text} »"
MEETING_FIRM_DECLINED = "❌ {firm} ne peut pas venir au RDV du {slot} ({reference})."
# Reminders.
REMINDER_FOR_FIRM = "⏰ <b>Rappel</b> : rendez-vous {slot} ({reference})\n<b>Où</b> : {place}"

# --- Email channel (what the animators read on Telegram) ----------------------------------
EMAIL_NEW_NEED_INCOMPLETE = (
    "✉️ <b>Demande reçue par e-mail</b> {reference} de {sender}, incomplète "
    "(il manque : {missing}). L'entreprise a été invitée à compléter."
)
EMAIL_FIRM_MESSAGE = "✉️ <b>{firm}</b> a écrit au sujet de {reference} :\n« {text} »"
EMAIL_PARTNER_ACK = "✅ <b>{partner}</b> prend en charge {reference} (réponse par e-mail : {cue})."
EMAIL_PARTNER_REFUSED = (
    "❌ <b>{partner}</b> décline {reference} (réponse par e-mail : {cue}).\n"
    "À qui la transmettre ?"
)
EMAIL_PARTNER_UNSURE = (
    "✉️ <b>{partner}</b> a répondu au sujet de {reference} :\n« {text} »\n"
    "Je ne sais pas dire si c'est une prise en charge. Qu'en dites-vous ?"
)
BTN_PARTNER_ACK = "Prise en charge"
BTN_PARTNER_REFUSED = "Refus"
BTN_PARTNER_NEITHER = "Ni l'un ni l'autre"
PARTNER_MARKED_ACK = "Noté : {partner} prend en charge {reference}."
PARTNER_MARKED_REFUSED = "Noté : {partner} décline {reference}. Utilisez « Réaffecter » pour la transmettre."
PARTNER_MARKED_NEITHER = "Noté : la réponse de {partner} reste dans l'historique de {reference}."
MISSING_LABELS: dict[str, str] = {
    "commune": "la commune",
    "theme": "le thème",
}

# --- Follow-up --------------------------------------------------------------------------------
FOLLOWUP_ALERT = (
    "⏰ <b>{partner}</b> n'a pas accusé réception de {reference} ({firm}) "
    "en {days} jours ouvrés, malgré une relance."
)
FOLLOWUP_STALE = "📂 {reference} ({firm}) est ouverte depuis plus de {days} jours. La clore ?"
BTN_KEEP_OPEN = "La garder ouverte"
KEPT_OPEN = "{reference} reste ouverte. Je vous reposerai la question dans {days} jours."
SATISFACTION_QUESTION = (
    "Votre demande {reference} est close. Avez-vous été aidé ?\n"
    "Notez de 1 (pas du tout) à 5 (tout à fait)."
)
SATISFACTION_ASK_COMMENT = "Merci ! Un commentaire ? Écrivez-le, ou touchez « Non merci »."
BTN_NO_COMMENT = "Non merci"
SATISFACTION_THANKS = "Merci pour votre avis."
SATISFACTION_ALREADY = "Merci, votre note est déjà enregistrée."
SATISFACTION_FOR_ANIMATOR = "⭐ {score}/5 de {firm} pour {reference}."
CHART_CAPTIONS: dict[str, str] = {
    "besoins-par-theme.png": "Nouvelles demandes par thème",
    "delais-accuse-reception.png": "Délai médian d'accusé de réception, par partenaire",
    "satisfaction.png": "Satisfaction des entreprises",
}

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
