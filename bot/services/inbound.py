"""Emails that reach the bot: a firm's new need, a firm's answer, a partner's reply.

The mail adapter (`handlers/mail`) decodes the message, drops automatic ones and extracts
the thread candidates; this service decides, in one transaction per message:

* the message belongs to a need only if its sender belongs to that need's thread (the firm,
  a routed partner or an animator of the territory). A stranger quoting a reference, or a
  reply address, starts a new need instead of reading or changing someone else's;
* a new email from a firm creates a need through the same records and routing as the
  Telegram intake, and gets exactly one reply (reference, programme cards, what is missing);
* a firm's answer fills what was missing (then the need is routed), or is passed on to the
  animator;
* a partner's reply is kept in the need's history; an acknowledgement or a refusal is
  recognised (`bot.services.replies`) and the animator told, or asked when unsure.

The inbound row moves out of ``new`` in the same transaction, so a message is acted on once.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from bot import texts
from bot.messages import Message
from bot.services import outbox
from bot.services.emails import (
    FirmReplyView,
    firm_reply_email,
    new_reply_token,
    reply_address,
)
from bot.services.extract import extract_fields
from bot.services.intake import next_reference
from bot.services.questions import QuestionService
from bot.services.replies import ReplyKind, classify_reply
from bot.services.routing import RoutingService, animator_chats, change_status
from bot.services.types import Button, IncomingEmail
from knowledge.geography import Commune, Geography, normalize_name
from knowledge.taxonomy import THEMES, theme_label
from knowledge.territories import Territory, TerritoryDirectory
from knowledge.text import fold
from storage.models import (
    InboundEmail,
    Need,
    NeedAttachment,
    NeedMessage,
    NeedRouting,
    NeedStatus,
)

__all__ = ["InboundService", "IncomingEmail", "guess_theme"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
DESCRIPTION_MAX = 2000
FORWARD_MAX = 1200
REQUIRED = ("commune", "theme")

# Words that name a theme in a firm's short answer ("c'est pour du recrutement").
_THEME_WORDS: dict[str, tuple[str, ...]] = {
    "recrutement": ("recrut", "embauch", "poste", "candidat"),
    "competences": ("formation", "former", "competence", "apprenti", "qualification"),
    "foncier": ("foncier", "terrain", "batiment", "locaux", "friche", "immobilier"),
    "innovation": ("innov", "moderni", "robot", "numerique", "industrie du futur"),
    "mutualisation": ("mutualis", "mettre en commun", "partage"),
    "financement": ("financ", "pret", "subvention", "investiss", "tresorerie"),
    "transition": ("transition", "energie", "decarbon", "environnement", "dechet"),
    "export": ("export", "international", "etranger"),
    "mobilite": ("mobilite", "transport", "deplacement", "logement"),
    "difficulte": ("difficulte", "redressement", "impaye", "sauvegarde"),
}


def guess_theme(text: str, questions: QuestionService | None) -> str | None:
    """The theme of a free text: the knowledge base's best programmes, or plain words."""
    folded = fold(text)
    votes: dict[str, float] = {}
    for key, words in _THEME_WORDS.items():
        hits = sum(1 for w in words if w in folded)
        if hits:
            votes[key] = votes.get(key, 0.0) + hits
    if questions is not None:
        answer = questions.ask(text[:500])
        if not answer.out_of_scope:
            for rank, hit in enumerate(answer.hits[:3]):
                for position, theme in enumerate(hit.card.themes):
                    if theme in THEMES and theme != "autre":
                        weight = hit.score * (1.0 if position == 0 else 0.4) / (rank + 1)
                        votes[theme] = votes.get(theme, 0.0) + weight
    if not votes:
        return None
    ranked = sorted(votes.items(), key=lambda kv: kv[1], reverse=True)
    if len(ranked) > 1 and ranked[1][1] > 0.75 * ranked[0][1]:
        return None  # two themes as likely: ask rather than guess
    return ranked[0][0]


class InboundService:
    """Acts on the emails the bot receives (see the module docstring for the rules)."""

    def __init__(
        self,
        geography: Geography,
        territories: TerritoryDirectory,
        *,
        routing: RoutingService,
        questions: QuestionService | None,
        tz: ZoneInfo,
        mail_domain: str,
        reply_local: str,
        max_bytes: int,
    ) -> None:
        self.geography = geography
        self.territories = territories
        self.routing = routing
        self.questions = questions
        self.tz = tz
        self.mail_domain = mail_domain
        self.reply_local = reply_local
        self.max_bytes = max_bytes

    # --- entry points -----------------------------------------------------------------------
    def prepare(self, mail: IncomingEmail) -> IncomingEmail:
        """The email with what its text says (fields, kind of reply): no database, any thread.

        The work is proportional to the text, so the mail adapter runs it in a worker
        thread; `handle` then only looks the results up.
        """
        return dataclasses.replace(
            mail, facts=extract_fields(mail.text, geography=self.geography),
            verdict=classify_reply(mail.text))

    def ignore(self, session: Session, inbound_id: int, *, kind: str, note: str,
               now: datetime) -> None:
        """Close an email without acting on it (automatic message, our own...)."""
        row = session.get(InboundEmail, inbound_id)
        if row is None or row.status != "new":
            return
        row.status, row.kind, row.note, row.processed_at = "ignored", kind, note[:300], now
        session.add(row)

    def handle(self, session: Session, mail: IncomingEmail, *, now: datetime) -> str | None:
        """Act on one email; returns its kind, or None when it was already handled."""
        row = session.get(InboundEmail, mail.inbound_id)
        if row is None or row.status != "new":
            return None
        need, role = self._thread(session, mail)
        if need is None:
            kind = "firm_new"
            need = self._new_need(session, mail, now=now)
        elif role == "firm" and _ERASE.search(mail.text):
            kind = "firm_erase"
            self._erase(session, need, mail, now=now)
        elif role == "firm":
            kind = "firm_reply"
            self._firm_reply(session, need, mail, now=now)
        elif role == "partner":
            kind = "partner_reply"
            self._partner_reply(session, need, mail, now=now)
        else:
            kind = "animator_reply"
            self._note(session, need, mail, "animator", now)
        row.status, row.kind, row.need_id, row.processed_at = "processed", kind, need.id, now
        session.add(row)
        return kind

    # --- threading --------------------------------------------------------------------------
    def _thread(self, session: Session, mail: IncomingEmail) -> tuple[Need | None, str | None]:
        """The need this email answers, if its sender belongs to that need's thread."""
        candidates: list[Need] = []
        for token in mail.tokens:
            found = session.exec(select(Need).where(Need.reply_token == token)).first()
            if found is not None:
                candidates.append(found)
        for reference in (*mail.need_refs, *mail.subject_refs):
            found = session.exec(select(Need).where(Need.reference == reference)).first()
            if found is not None:
                candidates.append(found)
        sender = mail.from_addr.lower()
        for need in candidates:
            role = self._role(session, need, sender)
            if role is not None:
                return need, role
        if candidates:
            log.info("email %s names a need but its sender is not in the thread: new need",
                     mail.inbound_id)
        return None, None

    def _role(self, session: Session, need: Need, sender: str) -> str | None:
        if need.channel == "email" and (need.contact_value or "").lower() == sender:
            return "firm"
        if need.contact_method == "email" and (need.contact_value or "").lower() == sender:
            return "firm"
        routed = session.exec(select(NeedRouting).where(NeedRouting.need_id == need.id)).all()
        if any(r.partner_email.lower() == sender for r in routed):
            return "partner"
        territory = self.territories.get(need.territory_id or "")
        if territory is not None and any(str(a.email).lower() == sender
                                         for a in territory.animators):
            return "animator"
        return None

    # --- a firm's first email ---------------------------------------------------------------
    def _new_need(self, session: Session, mail: IncomingEmail, *, now: datetime) -> Need:
        body = f"{mail.subject}\n{mail.text}".strip()
        facts = mail.facts or extract_fields(mail.text, geography=self.geography)
        commune = self._commune(facts.commune_hint, facts.postcode, mail.text)
        theme = guess_theme(body, self.questions)
        missing = [m for m, ok in (("commune", commune is not None), ("theme", theme is not None))
                   if not ok]
        territory = self.territories.for_epci(commune.epci_siren) if commune else None
        need = Need(
            reference=next_reference(session, now.astimezone(self.tz).year),
            status=(NeedStatus.AWAITING_INFO if missing else NeedStatus.SUBMITTED).value,
            channel="email", theme=theme or "autre", urgency="none",
            firm_name=(facts.firm_name or mail.from_name or None),
            siret=facts.siret, description=(mail.text or mail.subject)[:DESCRIPTION_MAX],
            contact_method="email", contact_value=mail.from_addr.lower(),
            commune_insee=commune.insee if commune else None,
            commune_name=commune.name if commune else None,
            epci_siren=commune.epci_siren if commune else None,
            epci_name=commune.epci_name if commune else None,
            territory_id=territory.id if territory else None,
            reply_token=new_reply_token(), missing=missing or None,
            # Writing to the territory's address is asking to be helped; the reply says
            # who sees the data and how to have it erased.
            consent_at=now, created_at=now, updated_at=now)
        session.add(need)
        session.flush()
        assert need.id is not None
        change_status_initial(session, need, now)
        kept = self._attachments(session, need, mail, now)
        partners: list[str] = []
        if not missing:
            partners = self._route(session, need, now)
        elif territory is not None:
            outbox.enqueue_for_chats(
                session, [int(c) for c in animator_chats(territory)],
                texts.EMAIL_NEW_NEED_INCOMPLETE.format(
                    reference=need.reference, sender=texts.esc(mail.from_addr),
                    missing=", ".join(texts.MISSING_LABELS[m] for m in missing)),
                now=now)
        self._reply(session, need, mail, kind="new", partners=partners, kept=kept,
                    cards_for=body, now=now)
        return need

    def _commune(self, hint: str | None, postcode: str | None,
                 text: str = "") -> Commune | None:
        for query in (hint, postcode):
            if not query:
                continue
            found = self.geography.resolve(query, limit=5)
            if found.status == "found":
                return found.communes[0]
        return self._named_commune(text) if text else None

    def _named_commune(self, text: str) -> Commune | None:
        """A commune written out in the text ("notre atelier de Paray-le-Monial").

        Only exact names count (no typo repair here), and only names that cannot be an
        ordinary word: compound names, or a capitalised word after "à", "de", "sur"...
        """
        tried: set[str] = set()
        for match in _PLACE.finditer(text):
            name = match.group("name")
            if ("-" not in name and not match.group("prep")) or name in tried:
                continue
            # Each name is looked up once, and only so many: a hostile text is long.
            tried.add(name)
            if len(tried) > _PLACE_LOOKUPS:
                break
            found = self.geography.resolve(name, limit=5, fuzzy=False)
            if found.status == "found" and normalize_name(found.communes[0].name) == (
                    normalize_name(name)):
                return found.communes[0]
        return None

    def _route(self, session: Session, need: Need, now: datetime) -> list[str]:
        routed = self.routing.route_new_need(session, need, now)
        for chat, message in routed.animator_messages:
            outbox.enqueue(session, channel="telegram", recipient=chat, messages=[message],
                           now=now, claimed=False)
        return routed.partner_names

    # --- a firm's answer --------------------------------------------------------------------
    def _firm_reply(self, session: Session, need: Need, mail: IncomingEmail, *,
                    now: datetime) -> None:
        self._note(session, need, mail, "firm", now, forward=not need.missing)
        kept = self._attachments(session, need, mail, now)
        if not need.missing:
            return  # passed on to the animator; no automatic answer to a conversation
        missing = list(need.missing)
        if "commune" in missing:
            facts = mail.facts or extract_fields(mail.text, geography=self.geography)
            commune = self._commune(facts.commune_hint or mail.text.strip()[:60],
                                    facts.postcode, mail.text)
            if commune is not None:
                territory = self.territories.for_epci(commune.epci_siren)
                need.commune_insee, need.commune_name = commune.insee, commune.name
                need.epci_siren, need.epci_name = commune.epci_siren, commune.epci_name
                need.territory_id = territory.id if territory else None
                missing.remove("commune")
        if "theme" in missing:
            theme = guess_theme(mail.text, None) or guess_theme(mail.text, self.questions)
            if theme is not None:
                need.theme = theme
                missing.remove("theme")
        need.missing = missing or None
        need.updated_at = now
        session.add(need)
        partners: list[str] = []
        if not missing:
            change_status(session, need, NeedStatus.SUBMITTED, actor=f"email:{need.reference}",
                          now=now, note="complétée par e-mail")
            partners = self._route(session, need, now)
        self._reply(session, need, mail, kind="update", partners=partners, kept=kept,
                    cards_for=None, now=now)

    def _erase(self, session: Session, need: Need, mail: IncomingEmail, *,
               now: datetime) -> None:
        """"Supprimer mes données": the person's needs keep only anonymous counts."""
        sender = mail.from_addr.lower()
        self._reply(session, need, mail, kind="erased", partners=[], kept=(), cards_for=None,
                    now=now)
        needs = session.exec(select(Need).where(Need.contact_value == sender)).all()
        for item in needs:
            assert item.id is not None
            for model in (NeedMessage, NeedAttachment):
                for row in session.exec(select(model).where(model.need_id == item.id)):
                    session.delete(row)
            item.firm_name = item.siret = item.description = item.contact_value = None
            item.firm = None
            item.anonymized_at = item.updated_at = now
            session.add(item)
        for row in session.exec(select(InboundEmail).where(InboundEmail.from_addr == sender)):
            row.raw = None
            row.from_addr = ""
            row.subject = ""
            session.add(row)

    # --- a partner's reply ------------------------------------------------------------------
    def _partner_reply(self, session: Session, need: Need, mail: IncomingEmail, *,
                       now: datetime) -> None:
        self._note(session, need, mail, "partner", now)
        self._attachments(session, need, mail, now)
        routing = session.exec(select(NeedRouting).where(
            NeedRouting.need_id == need.id,
            NeedRouting.partner_email == mail.from_addr.lower())).first()
        if routing is None:  # case differences in the directory
            routing = next(r for r in session.exec(select(NeedRouting).where(
                NeedRouting.need_id == need.id)) if r.partner_email.lower()
                == mail.from_addr.lower())
        verdict = mail.verdict or classify_reply(mail.text)
        territory = self.territories.get(need.territory_id or "")
        chats = animator_chats(territory) if territory else []
        name = texts.esc(routing.partner_name)
        if verdict.kind == ReplyKind.ACK:
            mark_partner_ack(session, need, routing, now=now, actor=f"email:{routing.partner_id}")
            message = Message.legacy(texts.EMAIL_PARTNER_ACK.format(
                partner=name, reference=need.reference, cue=texts.esc(verdict.reason)))
        elif verdict.kind == ReplyKind.REFUSED:
            routing.status = "refused"
            session.add(routing)
            message = Message.legacy(texts.EMAIL_PARTNER_REFUSED.format(
                partner=name, reference=need.reference, cue=texts.esc(verdict.reason)),
                ((Button(texts.BTN_REASSIGN, f"ani:re:{need.id}"),),))
        else:
            message = Message.legacy(texts.EMAIL_PARTNER_UNSURE.format(
                partner=name, reference=need.reference,
                text=texts.esc(_excerpt(mail.text))),
                ((Button(texts.BTN_PARTNER_ACK, f"ani:pack:{need.id}:{routing.id}"),
                  Button(texts.BTN_PARTNER_REFUSED, f"ani:pref:{need.id}:{routing.id}")),
                 (Button(texts.BTN_PARTNER_NEITHER, f"ani:pnone:{need.id}:{routing.id}"),)))
        for chat in chats:
            outbox.enqueue(session, channel="telegram", recipient=chat, messages=[message],
                           now=now, claimed=False)

    # --- shared -----------------------------------------------------------------------------
    def _note(self, session: Session, need: Need, mail: IncomingEmail, kind: str,
              now: datetime, *, forward: bool = False) -> None:
        assert need.id is not None
        session.add(NeedMessage(need_id=need.id, inbound_id=mail.inbound_id, author_kind=kind,
                                author=mail.from_addr.lower(), text=mail.text[:20_000], at=now))
        territory = self.territories.get(need.territory_id or "")
        if forward and territory is not None:
            outbox.enqueue_for_chats(
                session, [int(c) for c in animator_chats(territory)],
                texts.EMAIL_FIRM_MESSAGE.format(firm=texts.esc(need.firm_name or mail.from_addr),
                                                reference=need.reference,
                                                text=texts.esc(_excerpt(mail.text))),
                now=now)

    def _attachments(self, session: Session, need: Need, mail: IncomingEmail,
                     now: datetime) -> tuple[str, ...]:
        assert need.id is not None
        kept = []
        if mail.oversized:
            return ()
        for filename, content_type, size, data in mail.attachments:
            if data is None:
                continue
            session.add(NeedAttachment(need_id=need.id, inbound_id=mail.inbound_id,
                                       filename=filename[:120], content_type=content_type[:100],
                                       size=size, data=data, at=now))
            kept.append(filename)
        return tuple(kept)

    def _reply(self, session: Session, need: Need, mail: IncomingEmail, *, kind: str,
               partners: list[str], kept: tuple[str, ...], cards_for: str | None,
               now: datetime) -> None:
        """The one automatic answer to this email, through the outbox."""
        assert need.reply_token is not None
        territory: Territory | None = self.territories.get(need.territory_id or "")
        cards: list[tuple[str, str, str]] = []
        if cards_for and self.questions is not None:
            answer = self.questions.ask(cards_for[:500])
            if not answer.out_of_scope:
                for hit in answer.hits[:3]:
                    card = hit.card
                    cards.append((card.title, card.summary,
                                  card.sources[0] if card.sources else ""))
        if kind == "erased":
            partners, kept, cards = [], (), []
        view = FirmReplyView(
            kind=kind, reference=need.reference,
            theme_label=theme_label(need.theme) if "theme" not in (need.missing or []) else None,
            commune=need.commune_name, missing=tuple(
                _MISSING_ASK[m] for m in (need.missing or [])),
            partners=tuple(partners),
            animator_name=territory.animators[0].name if territory else None,
            territory_name=territory.name if territory else None,
            cards=tuple(cards), attachments=kept, oversized=mail.oversized,
            max_size=f"{self.max_bytes // (1024 * 1024)} Mo")
        draft = firm_reply_email(
            view=view, to_email=mail.from_addr, to_name=mail.from_name, subject=mail.subject,
            in_reply_to=mail.message_id, references=mail.references,
            reply_to=reply_address(self.reply_local, need.reply_token, self.mail_domain),
            mail_domain=self.mail_domain)
        outbox.enqueue_payload(
            session, channel="email", recipient=mail.from_addr, now=now,
            payload={"email": draft.to_payload(), "need_id": need.id,
                     "territory_id": need.territory_id, "key": draft.message_id.strip("<>")})


# A capitalised name, compound or not, optionally after a preposition of place.
_PLACE_LOOKUPS = 100
_PLACE = re.compile(
    r"(?:(?P<prep>\b(?:à|a|de|d'|sur|au|aux|près de|proche de)\s+))?"
    r"(?P<name>(?:L[ea]s? |L')?[A-ZÀ-Ý][\w'’]+(?:-[\w'’]+)*)")

# "supprimer mes données", "effacer mes données", with or without accents.
_ERASE = re.compile(r"\b(?:supprimer|effacer)\s+(?:toutes\s+)?mes\s+donn[ée]es\b",
                    re.IGNORECASE)

_MISSING_ASK = {
    "commune": "la commune de l'établissement concerné (ou son code postal)",
    "theme": ("le type de besoin : recrutement, formation, foncier, innovation, "
              "financement, transition écologique, export, mobilité, difficultés…"),
}


def _excerpt(text: str) -> str:
    text = re.sub(r"\n{3,}", "\n\n", text.strip())
    return text if len(text) <= FORWARD_MAX else text[: FORWARD_MAX - 1] + "…"


def change_status_initial(session: Session, need: Need, now: datetime) -> None:
    """The first history line of a need received by email."""
    from storage.models import NeedEvent

    assert need.id is not None
    session.add(NeedEvent(need_id=need.id, from_status=None, to_status=need.status,
                          actor="email", at=now))


def mark_partner_ack(session: Session, need: Need, routing: NeedRouting, *, now: datetime,
                     actor: str) -> None:
    """A partner took the need: its routing row and, the first time, the need's status."""
    if routing.status != "acknowledged":
        routing.status = "acknowledged"
        routing.acknowledged_at = now
        session.add(routing)
    if need.status == NeedStatus.ROUTED.value:
        change_status(session, need, NeedStatus.ACKNOWLEDGED, actor=actor, now=now,
                      note=routing.partner_name[:200])
