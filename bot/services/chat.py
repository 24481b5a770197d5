"""The conversation around the form: start and consent, help, cancel, erase, one's needs,
free questions for the knowledge base, media, and buttons that no longer apply.

These are the chat's own commands, whoever the person is; the intake form, the animator's
tools, meetings and the radar are other services, reached through the dispatcher.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from bot.catalogue import label, t
from bot.catalogue.labels import status_label
from bot.messages import Bullets, Button, Message, Span, Text, lines
from bot.services import outbox
from bot.services.animators import Animators, is_animator, user_chats, user_ids
from bot.services.intake import IntakeService, mark_choice
from bot.services.privacy import erase_person
from bot.services.questions import QuestionService
from bot.services.relay import DRAFT as RELAY_DRAFT
from bot.services.relay import PICK as RELAY_PICK
from bot.services.relay import RelayService, relay_content
from bot.services.types import Reply
from bot.turn import Turn
from knowledge.taxonomy import THEMES, theme_label
from knowledge.territories import TerritoryDirectory
from storage.db import Database
from storage.models import ChatDraft, Consent, Need

__all__ = ["ChatService"]

_MEDIA = ("sticker", "photo", "voice", "video", "document", "location", "contact")


class ChatService:
    """Commands and fallbacks every chat has."""

    def __init__(self, intake: IntakeService, questions: QuestionService,
                 territories: TerritoryDirectory, relay: RelayService, *, tz: ZoneInfo,
                 animators: Animators) -> None:
        self.relay = relay
        self.intake = intake
        self.questions = questions
        self.territories = territories
        self.tz = tz
        self.animators = animators

    # --- /start and consent ------------------------------------------------------------
    def start(self, turn: Turn) -> None:
        """/start: resume the open form, ask for consent first, or open a new form.

        An animator (or someone opening an animator's invitation) gets their own welcome,
        never the firm's onboarding.
        """
        welcome = self.animators.start(turn.session, turn.event.user_id, turn.event.args,
                                       now=turn.now)
        if welcome is not None:
            turn.reply.messages.extend(welcome)
        elif turn.conversation is not None:
            self.intake.welcome_back(turn)
        elif turn.session.get(Consent, turn.event.user_id) is None:
            # Nothing about the person is stored before the consent button is pressed.
            self._consent_request(turn)
        else:
            self.intake.begin(turn)

    def _consent_request(self, turn: Turn, theme: str = "") -> None:
        turn.say(Message(t("common.welcome")))
        suffix = f":{theme}" if theme else ""
        turn.say(Message(
            t("common.privacy_notice") + t("common.consent_question"),
            ((Button(label("common.btn_consent_yes"), f"consent:yes{suffix}"),
              Button(label("common.btn_consent_no"), "consent:no")),),
        ))

    def on_consent(self, turn: Turn) -> Reply | None:
        """"J'accepte" (then the form opens, with a theme from a card if any) or "Je refuse"."""
        event = turn.event
        value, _, theme = event.value.partition(":")[2].partition(":")
        theme = theme if theme in THEMES else ""
        if turn.conversation is not None or turn.session.get(Consent, event.user_id) is not None:
            if turn.conversation is None and value == "yes":
                mark_choice(turn, label("common.btn_consent_yes"))
                self.intake.begin(turn, theme)
            return Reply(toast=label("firm.stale_button"))
        if value != "yes":
            mark_choice(turn, label("common.btn_consent_no"))
            turn.say(Message(t("common.consent_refused")))
            return None
        turn.session.add(Consent(user_id=event.user_id, channel=event.channel,
                                 given_at=turn.now))
        mark_choice(turn, label("common.btn_consent_yes"))
        self.intake.begin(turn, theme)
        return None

    # --- help, cancel, erase -----------------------------------------------------------
    def help(self, turn: Turn) -> None:
        """/aide: what the bot does, or the animator's commands (the pending question follows)."""
        if is_animator(turn.session, self.territories, turn.event.user_id):
            turn.say(Message(t("animator.commands")))
            return
        turn.say(Message(t("common.help")))

    def cancel(self, turn: Turn) -> None:
        """/annuler: drop the dialog in progress (a meeting being proposed, or the form)."""
        draft = turn.session.get(ChatDraft, turn.event.chat_id)
        if draft is not None:
            turn.session.delete(draft)
            relay = draft.kind in {RELAY_DRAFT, RELAY_PICK}
            turn.say(Message(t("common.relay_abandoned" if relay else "common.meeting_abandoned")))
        elif turn.conversation is None:
            turn.say(Message(t("common.nothing_to_cancel")))
        else:
            turn.drop_conversation()
            turn.say(Message(t("firm.cancelled")))

    def erase_question(self, turn: Turn) -> None:
        """/supprimer: ask for a confirmation before erasing."""
        turn.say(Message(t("common.delete_question"), (
            (Button(label("common.btn_delete_yes"), "del:yes"),
             Button(label("common.btn_delete_no"), "del:no")),)))

    def on_erase(self, turn: Turn) -> None:
        """"Oui, tout effacer": erase the person everywhere; "Non": keep, and go on."""
        if turn.event.value == "del:yes":
            mark_choice(turn, label("common.btn_delete_yes"))
            turn.drop_conversation()
            erase_person(turn.session, telegram_id=turn.event.user_id, now=turn.now)
            turn.say(Message(t("common.deleted")))
            return
        mark_choice(turn, label("common.btn_delete_no"))
        turn.say(Message(t("common.delete_kept")))
        if turn.conversation is not None:
            self.intake.ask(turn)

    def unknown_command(self, turn: Turn) -> None:
        """A command nobody registered: say so, with the help (an animator's, to an animator)."""
        animator = is_animator(turn.session, self.territories, turn.event.user_id)
        turn.say(Message(t("common.unknown_command")
                         + t("animator.commands" if animator else "common.help")))
        if turn.conversation is not None:
            self.intake.ask(turn)

    # --- one's needs -------------------------------------------------------------------
    def my_needs(self, turn: Turn) -> None:
        """/mesdemandes: the person's needs and where each one stands."""
        needs = turn.session.exec(
            select(Need).where(Need.telegram_user_id == turn.event.user_id)
            .order_by(col(Need.created_at).desc()).limit(20)
        ).all()
        if not needs:
            turn.say(Message(t("common.my_needs_empty")))
            return
        turn.say(Message(lines(t("common.my_needs_title"), *(
            t("common.my_needs_line", reference=need.reference, theme=theme_label(need.theme),
              status=status_label(need.status),
              date=need.created_at.astimezone(self.tz).strftime("%d/%m/%Y"))
            for need in needs))))

    # --- free text, media, knowledge base ----------------------------------------------
    def free_text(self, turn: Turn) -> None:
        """Typed text outside any dialog: an answer to a relayed message, or a question.

        An animator's text is answered like a question, without the offer to pass it on to
        the animators, and followed by the animator's commands.
        """
        if self._relayed_answer(turn):
            return
        animator = is_animator(turn.session, self.territories, turn.event.user_id)
        refused = self.questions.over_limit(turn.event.user_id, turn.now)
        if refused is not None:
            turn.reply.messages.extend(refused)
            return
        turn.reply.messages.extend(self.questions.answer(
            turn.session, turn.event.value, channel=turn.event.channel, now=turn.now,
            owner=turn.event.chat_id, forward=not animator))
        if animator:
            turn.say(self.animators.commands_hint())

    def _relayed_answer(self, turn: Turn) -> bool:
        """A Telegram "reply" to a relayed message goes to the other person, not elsewhere."""
        event = turn.event
        if event.reply_to_text is None:
            return False
        reply = self.relay.on_reply_to(turn.session, event.user_id, event.chat_id,
                                       event.reply_to_text, relay_content(turn), now=turn.now)
        if reply is None:
            return False
        turn.reply.add(reply)
        return True

    def media(self, turn: Turn) -> None:
        """A photo, a voice note…: relayed when it answers a relayed message, else explained."""
        if turn.event.attachment is not None and turn.conversation is None \
                and self._relayed_answer(turn):
            return
        kind = turn.event.value if turn.event.value in _MEDIA else "other"
        reason = t(f"common.media_{kind}")
        conv = turn.conversation
        if conv is None:
            turn.say(Message(lines(reason, t("common.need_consent_first"))))
            return
        if not self.intake.buttons_only(conv):
            reason = t("common.media_in_text", reason=reason)
        self.intake.ask(turn, preface=reason)

    def stale_button(self, turn: Turn) -> Reply:
        """A button of a question already answered, of a cancelled form, or forged."""
        return Reply(toast=label("firm.stale_button"))

    def on_kb_button(self, turn: Turn) -> None:
        """A knowledge-base button: details, contacts, another card, forward, apply."""
        event, session = turn.event, turn.session
        action = self.questions.on_button(
            session, event.value.partition(":")[2], owner=event.chat_id,
            forward=not is_animator(session, self.territories, event.user_id))
        turn.reply.toast = action.toast
        turn.reply.messages.extend(action.messages)
        if action.forward_text is not None:
            self._forward_question(session, event.user_id, action.forward_text, turn)
        if action.apply_theme is not None:
            if turn.conversation is not None:
                turn.say(Message(t("common.kb_intake_in_progress")))
                self.intake.ask(turn)
            elif session.get(Consent, event.user_id) is None:
                self._consent_request(turn, action.apply_theme)
            else:
                self.intake.begin(turn, action.apply_theme)
        elif turn.conversation is not None and action.messages:
            # The form is waiting for an answer: ask it again after the card.
            self.intake.ask(turn)

    def _forward_question(self, session: Session, user_id: int, question: str,
                          turn: Turn) -> None:
        """Send a question nobody could answer to the animators (of the firm's territory)."""
        last = session.exec(
            select(Need.territory_id)
            .where(Need.telegram_user_id == user_id, col(Need.territory_id).is_not(None))
            .order_by(col(Need.id).desc()).limit(1)
        ).first()
        message = Message(t("animator.question_forwarded", question=question[:1500]))
        for territory in self.territories.territories:
            if last not in (None, territory.id):
                continue
            for chat in user_chats(session, territory):
                turn.reply.others.append((str(chat), message))

    def reload_knowledge(self, turn: Turn) -> None:
        """/recharger (animators): reload the programme cards and list the broken ones."""
        if not is_animator(turn.session, self.territories, turn.event.user_id):
            turn.say(Message(t("common.kb_reload_forbidden")))
            return
        kb = self.questions.kb
        kb.reload()
        text = t("common.kb_reloaded", count=len(kb.cards))
        if kb.problems:
            text = lines(text, t("common.kb_reload_problems"))
            text = Text((*text.blocks, Bullets(tuple((Span(str(p)),) for p in kb.problems[:20]))))
        turn.say(Message(text))

    # --- outside a turn ----------------------------------------------------------------
    async def report_undeliverable(self, db: Database, chat_id: int, error: str, *,
                                   now: datetime) -> None:
        """Tell the animators when Telegram refuses for good a message to a firm."""
        def work(session: Session) -> None:
            if chat_id in user_ids(session, self.territories):
                return  # never loop on an animator's own chat
            need = session.exec(
                select(Need).where(Need.telegram_chat_id == chat_id,
                                   col(Need.territory_id).is_not(None))
                .order_by(col(Need.id).desc()).limit(1)
            ).first()
            territory = self.territories.get(need.territory_id or "") if need else None
            if need is None or territory is None:
                return
            message = Message(t("animator.telegram_undeliverable", reference=need.reference,
                                firm=need.firm_name or "—", error=_refusal(error)))
            for chat in user_chats(session, territory):
                outbox.enqueue(session, channel="telegram", recipient=str(chat),
                               messages=[message], now=now, claimed=False)

        await db.run(work)


def _refusal(error: str) -> str:
    """Telegram's refusal in French words (its own message is English)."""
    lowered = error.lower()
    if "blocked" in lowered:
        return label("animator.refused_blocked")
    if "not found" in lowered or "deactivated" in lowered:
        return label("animator.refused_no_chat")
    return label("animator.refused_other")
