"""The intake form: a firm describes its need, step by step, saved at every step.

Conversation state is data (a `Conversation` row: step + answers). Each incoming event
is handled in one transaction that also writes the replies to the outbox, so a crash at
any point either loses nothing (not committed: Telegram sends the update again) or has
the replies waiting in the outbox (committed: the sweeper delivers them).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, delete, func, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot import texts
from bot.services import outbox
from bot.services.animator import AnimatorResult, AnimatorService
from bot.services.digests import DigestService
from bot.services.emails import new_reply_token
from bot.services.firms import activity_text, stored_facts
from bot.services.followup import FollowUpService
from bot.services.meetings import MeetingService
from bot.services.mutualisation import RadarService
from bot.services.questions import QuestionService, looks_like_question
from bot.services.routing import RoutingService
from bot.services.types import Button, Incoming, Outgoing, Result
from bot.services.validation import (
    Invalid,
    format_phone,
    parse_company_name,
    parse_description,
    parse_email,
    parse_phone,
    parse_siret,
)
from knowledge.firms import FirmDirectory, FirmRecord, LookupOutcome
from knowledge.geography import Commune, Geography
from knowledge.taxonomy import THEMES, theme_label
from knowledge.territories import TerritoryDirectory
from storage.db import Database, lock_chat
from storage.models import (
    ChatDraft,
    Consent,
    Conversation,
    FirmLookup,
    Need,
    NeedEvent,
    NeedSequence,
    NeedStatus,
    ProcessedUpdate,
)
from storage.types import utcnow

__all__ = ["FIELD_ORDER", "ConversationConflict", "IntakeService", "erase_user_data"]

Clock = Callable[[], datetime]

# The order of the questions. The SIRET comes first: the public directory then gives the
# name and the commune. `firm_confirm`, `location_choice`, `firm_choice` and
# `contact_value` only appear when needed; a field already known is not asked again.
FIELD_ORDER: tuple[str, ...] = (
    "siret",
    "firm_confirm",
    "company_name",
    "location",
    "location_choice",
    "firm_choice",
    "theme",
    "description",
    "urgency",
    "contact_method",
    "contact_value",
    "summary",
)
# Fields the summary's "Modifier" offers, and the step each one starts at.
EDITABLE: dict[str, str] = {
    "company_name": "company_name",
    "siret": "siret",
    "location": "location",
    "theme": "theme",
    "description": "description",
    "urgency": "urgency",
    "contact": "contact_method",
}
# Steps answered by buttons only: typed text there gets a reminder to use them.
BUTTON_STEPS = frozenset(
    {"firm_confirm", "location_choice", "firm_choice", "theme", "urgency", "contact_method",
     "summary", "edit_choice"}
)
# Steps where a typed text ending with "?" is a question to the knowledge base, not an
# answer (a firm name or a SIRET never ends with "?"; a description may).
QUESTION_STEPS = frozenset({"company_name", "siret", "location", "contact_value"})
MAX_COMMUNE_BUTTONS = 12
MAX_FIRM_BUTTONS = 5
FIRM_BUTTON_LABEL = 60
_NUMBER_SEPARATORS = re.compile(r"[\s.\-]")


@dataclass(frozen=True, slots=True)
class _Prefetched:
    """A directory answer fetched before the transaction, for the step it was asked for.

    The lookup is network I/O, so it cannot run inside the intake's transaction; the
    transaction uses it only if the conversation is still at `step` with the same `key`.
    """

    step: str
    key: str  # the digits typed at the SIRET step, or the INSEE code searched
    lookup: LookupOutcome | None = None
    candidates: tuple[FirmRecord, ...] = ()


@dataclass(slots=True)
class _Turn:
    """What one event produces: messages for this chat, and an optional button toast."""

    messages: list[Outgoing] = field(default_factory=list)
    toast: str | None = None
    # Messages for other chats (e.g. a question forwarded to the animators).
    others: list[tuple[str, Outgoing]] = field(default_factory=list)
    found: _Prefetched | None = None
    # The stored conversation was deleted (cancelled, submitted): nothing to save back.
    dropped: bool = False

    def say(self, text: str, buttons: tuple[tuple[Button, ...], ...] = ()) -> None:
        self.messages.append(Outgoing(text, buttons))


@dataclass(slots=True)
class _Accept:
    values: dict[str, Any]
    goto: str | None = None
    preface: str | None = None


def _rows(buttons: list[Button], per_row: int = 1) -> tuple[tuple[Button, ...], ...]:
    return tuple(tuple(buttons[i : i + per_row]) for i in range(0, len(buttons), per_row))


class IntakeService:
    """Runs the intake form for one channel-neutral conversation per chat."""

    def __init__(
        self,
        db: Database,
        geography: Geography,
        territories: TerritoryDirectory,
        *,
        tz: ZoneInfo,
        clock: Clock = utcnow,
        questions: QuestionService | None = None,
        routing: RoutingService | None = None,
        animator: AnimatorService | None = None,
        firms: FirmDirectory | None = None,
        meetings: MeetingService | None = None,
        followup: FollowUpService | None = None,
        digests: DigestService | None = None,
        radar: RadarService | None = None,
        outbox_lease: timedelta = outbox.LEASE,
    ) -> None:
        self.radar = radar
        # How long a reply written by a turn stays claimed by this process: past it, a
        # process that died before delivering it leaves it to the sweeper (RELAIS_OUTBOX_LEASE).
        self.outbox_lease = outbox_lease
        self.digests = digests
        self.followup = followup
        self.firms = firms
        self.meetings = meetings
        self.questions = questions
        self.routing = routing
        self.animator = animator
        self.db = db
        self.geography = geography
        self.territories = territories
        self.tz = tz
        self.clock = clock

    # --- entry point ---------------------------------------------------------------------
    async def handle(self, event: Incoming) -> Result:
        """Handle one event in one transaction; return the deliveries to make now."""
        found = await self._prefetch(event) if self.firms is not None else None
        for attempt in range(_ATTEMPTS):
            try:
                return await self.db.run(lambda session: self._handle(session, event, found))
            except (ConversationConflict, IntegrityError):
                # Another instance changed (or created) this chat's conversation between our
                # read and our write: the transaction rolled back whole (update id included),
                # so running it again on the fresh state is safe.
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def _prefetch(self, event: Incoming) -> _Prefetched | None:
        """Ask the company directory what this answer will need, before the transaction."""
        assert self.firms is not None
        if event.kind == "button" and not event.value.startswith("loc:"):
            return None
        if event.kind not in {"text", "button"}:
            return None
        peeked = await self.db.run(lambda session: _peek(session, event.chat_id))
        if peeked is None:
            return None
        step, answers = peeked
        if step == "siret":
            digits = _NUMBER_SEPARATORS.sub("", event.value)
            if event.kind == "text" and digits.isdigit() and len(digits) in {9, 14}:
                return _Prefetched(step, digits, lookup=await self.firms.lookup_number(digits))
            return None
        if not _wants_search(answers):
            return None
        insee = None
        if step == "location" and event.kind == "text":
            resolved = self.geography.resolve(" ".join(event.value.split()),
                                              limit=MAX_COMMUNE_BUTTONS)
            if resolved.status == "found":
                insee = resolved.communes[0].insee
        elif step == "location_choice" and event.kind == "button":
            insee = event.value.partition(":")[2]
        if not insee or self.geography.by_insee(insee) is None:
            return None
        records = await self.firms.search(answers["company_name"], insee,
                                          limit=MAX_FIRM_BUTTONS)
        usable = tuple(r for r in records if r.diffusible and r.name)
        return _Prefetched(step, insee, candidates=usable)

    def _handle(self, session: Session, event: Incoming, found: _Prefetched | None) -> Result:
        now = self.clock()
        # Two instances never run two turns of one chat at once (PostgreSQL); the version
        # check in `_save_conversation` is the second line of defence.
        lock_chat(session, event.chat_id)
        if event.update_id is not None and not self._first_time(session, event.update_id, now):
            return Result(duplicate=True)
        turn = _Turn(found=found)
        # Read and written with plain SQL: through the ORM (identity map, unit of work,
        # attribute history) the same two statements cost three times as much CPU.
        conv = _load_conversation(session, event.chat_id)
        loaded = _saved_state(conv) if conv is not None else None
        read_version = conv.version if conv is not None else 0
        if event.kind == "command":
            self._on_command(session, event, conv, turn, now)
        elif event.kind == "button":
            self._on_button(session, event, conv, turn, now)
        elif event.kind == "media":
            self._on_media(event, conv, turn)
        else:
            self._on_text(session, event, conv, turn, now)
        if conv is not None and not turn.dropped and _saved_state(conv) != loaded:
            _save_conversation(session, conv, read_version)
        deliveries = outbox.enqueue(
            session,
            channel=event.channel,
            recipient=str(event.chat_id),
            messages=turn.messages,
            now=now,
            lease=self.outbox_lease,
        )
        for recipient, message in turn.others:
            deliveries += outbox.enqueue(
                session, channel="telegram", recipient=recipient, messages=[message], now=now,
                lease=self.outbox_lease,
            )
        return Result(deliveries=deliveries, toast=turn.toast)

    def _first_time(self, session: Session, update_id: int, now: datetime) -> bool:
        """Record the update id; False when it was already handled (a redelivery)."""
        stmt = _PROCESSED_INSERT[session.get_bind().dialect.name == "postgresql"]
        result = session.execute(stmt, {"update_id": update_id, "processed_at": now})
        return result.rowcount == 1  # type: ignore[attr-defined]

    async def report_undeliverable(self, chat_id: int, error: str) -> None:
        """Tell the animators when Telegram refuses for good a message to a firm."""
        if chat_id in self.territories.animator_user_ids():
            return  # never loop on an animator's own chat
        now = self.clock()

        def work(session: Session) -> None:
            need = session.exec(
                select(Need).where(Need.telegram_chat_id == chat_id,
                                   col(Need.territory_id).is_not(None))
                .order_by(col(Need.id).desc()).limit(1)
            ).first()
            territory = self.territories.get(need.territory_id or "") if need else None
            if need is None or territory is None:
                return
            text = texts.TELEGRAM_UNDELIVERABLE.format(
                reference=need.reference, firm=texts.esc(need.firm_name or "—"),
                error=texts.esc(error[:200]))
            outbox.enqueue_for_chats(
                session, [a.telegram_user_id for a in territory.animators], text, now=now
            )

        await self.db.run(work)

    # --- commands ------------------------------------------------------------------------
    def _on_command(
        self,
        session: Session,
        event: Incoming,
        conv: Conversation | None,
        turn: _Turn,
        now: datetime,
    ) -> None:
        name = event.value
        if name == "start":
            self._start(session, event, conv, turn, now)
        elif name == "annuler":
            draft = session.get(ChatDraft, event.chat_id)
            if draft is not None:
                # A meeting being proposed (or another slot being typed) is what is undone.
                session.delete(draft)
                turn.say(texts.MEETING_ABANDONED)
            elif conv is None:
                turn.say(texts.NOTHING_TO_CANCEL)
            else:
                _drop_conversation(session, conv, turn)
                turn.say(texts.CANCELLED)
        elif name == "aide":
            turn.say(texts.HELP)
            if conv is not None:
                self._ask(conv, turn)
        elif name == "mesdemandes":
            self._list_needs(session, event, turn)
            if conv is not None:
                self._ask(conv, turn)
        elif name in {"demandes", "demande"} and self.animator is not None:
            if name == "demandes":
                result = self.animator.list_open(session, event.user_id)
            else:
                result = self.animator.show(session, event.user_id, event.args)
            self._merge(result, turn)
        elif name == "rdv" and self.meetings is not None:
            self._merge(self.meetings.command_rdv(session, event.user_id, event.chat_id,
                                                  event.args, now=now), turn)
        elif name == "radar" and self.radar is not None:
            self._merge(self.radar.command(session, event.user_id), turn)
        elif name == "stats" and self.digests is not None:
            self._merge(self.digests.stats_command(session, event.user_id, now=now), turn)
        elif name == "mesrdv" and self.meetings is not None:
            turn.messages.extend(self.meetings.upcoming_for_firm(session, event.user_id, now=now))
            if conv is not None:
                self._ask(conv, turn)
        elif name == "recharger":
            self._reload_knowledge(event, turn)
        elif name == "supprimer":
            turn.say(
                texts.DELETE_QUESTION,
                ((Button(texts.BTN_DELETE_YES, "del:yes"), Button(texts.BTN_DELETE_NO, "del:no")),),
            )
        else:
            turn.say(texts.UNKNOWN_COMMAND + "\n" + texts.HELP)
            if conv is not None:
                self._ask(conv, turn)

    @staticmethod
    def _merge(result: AnimatorResult, turn: _Turn) -> None:
        turn.messages.extend(result.messages)
        turn.others.extend(result.others)
        turn.toast = result.toast

    def _reload_knowledge(self, event: Incoming, turn: _Turn) -> None:
        if event.user_id not in self.territories.animator_user_ids() or self.questions is None:
            turn.say(texts.KB_RELOAD_FORBIDDEN)
            return
        self.questions.kb.reload()
        problems = self.questions.kb.problems
        text = texts.KB_RELOADED.format(count=len(self.questions.kb.cards))
        if problems:
            listing = "\n".join(f"• {texts.esc(p)}" for p in problems[:20])
            text += "\n" + texts.KB_RELOAD_PROBLEMS.format(problems=listing)
        turn.say(text)

    def _start(
        self,
        session: Session,
        event: Incoming,
        conv: Conversation | None,
        turn: _Turn,
        now: datetime,
    ) -> None:
        if conv is not None:
            turn.say(texts.WELCOME_BACK)
            self._ask(conv, turn)
            return
        if session.get(Consent, event.user_id) is None:
            # Nothing about the person is stored before the consent button is pressed.
            self._consent_request(turn)
            return
        conv = self._new_conversation(session, event, now)
        self._ask(conv, turn)

    def _new_conversation(self, session: Session, event: Incoming, now: datetime) -> Conversation:
        conv = Conversation(
            chat_id=event.chat_id,
            user_id=event.user_id,
            channel=event.channel,
            step=FIELD_ORDER[0],
            answers={},
            created_at=now,
            updated_at=now,
        )
        session.add(conv)
        return conv

    def _list_needs(self, session: Session, event: Incoming, turn: _Turn) -> None:
        needs = session.exec(
            select(Need)
            .where(Need.telegram_user_id == event.user_id)
            .order_by(col(Need.created_at).desc())
            .limit(20)
        ).all()
        if not needs:
            turn.say(texts.MY_NEEDS_EMPTY)
            return
        lines = [texts.MY_NEEDS_TITLE]
        for need in needs:
            lines.append(
                texts.MY_NEEDS_LINE.format(
                    reference=need.reference,
                    theme=texts.esc(theme_label(need.theme)),
                    status=texts.STATUS_LABELS.get(need.status, need.status),
                    date=need.created_at.astimezone(self.tz).strftime("%d/%m/%Y"),
                )
            )
        turn.say("\n".join(lines))

    # --- buttons -------------------------------------------------------------------------
    def _on_button(
        self,
        session: Session,
        event: Incoming,
        conv: Conversation | None,
        turn: _Turn,
        now: datetime,
    ) -> None:
        prefix, _, value = event.value.partition(":")
        if prefix == "ani" and self.animator is not None:
            self._merge(
                self.animator.on_button(session, event.user_id, value, now=now,
                                        message_id=event.message_id),
                turn,
            )
            return
        if prefix == "rad" and self.radar is not None:
            self._merge(self.radar.on_button(session, event.user_id, event.value, now=now),
                        turn)
            return
        if prefix == "sat" and self.followup is not None:
            self._merge(self.followup.on_button(session, event.user_id, event.chat_id,
                                                event.value, now=now), turn)
            return
        if prefix in {"md", "mt"} and self.meetings is not None:
            self._merge(self.meetings.on_button(session, event.user_id, event.chat_id,
                                                event.value, now=now), turn)
            return
        if prefix == "kb" and self.questions is not None:
            self._on_kb_button(session, event, conv, value, turn, now)
            return
        if prefix == "consent":
            self._on_consent(session, event, conv, value, turn, now)
            return
        if prefix == "del":
            self._on_delete(session, event, conv, value, turn, now)
            return
        if conv is None or prefix != _button_prefix(conv.step):
            # A button of a question already answered (or of a cancelled form).
            turn.toast = texts.STALE_BUTTON
            return
        outcome = self._button_answer(conv, value, turn.found)
        if isinstance(outcome, Invalid):
            turn.toast = outcome.reason
            return
        label = self._button_label(conv, value)
        if label:
            self._mark_choice(event, label, turn)
        self._advance(session, event, conv, outcome, turn, now)

    def _on_consent(
        self,
        session: Session,
        event: Incoming,
        conv: Conversation | None,
        value: str,
        turn: _Turn,
        now: datetime,
    ) -> None:
        # "yes", or "yes:<theme>" when the intake was started from a programme card.
        value, _, theme = value.partition(":")
        theme = theme if theme in THEMES else ""
        if conv is not None or session.get(Consent, event.user_id) is not None:
            turn.toast = texts.STALE_BUTTON
            if conv is None and value == "yes":
                self._mark_choice(event, texts.BTN_CONSENT_YES, turn)
                self._begin(session, event, theme, turn, now)
            return
        if value != "yes":
            self._mark_choice(event, texts.BTN_CONSENT_NO, turn)
            turn.say(texts.CONSENT_REFUSED)
            return
        session.add(Consent(user_id=event.user_id, channel=event.channel, given_at=now))
        self._mark_choice(event, texts.BTN_CONSENT_YES, turn)
        self._begin(session, event, theme, turn, now)

    def _begin(
        self, session: Session, event: Incoming, theme: str, turn: _Turn, now: datetime
    ) -> None:
        """Open a new intake (consent given), with the theme already known if any."""
        conv = self._new_conversation(session, event, now)
        if theme:
            conv.answers = {"theme": theme}
            turn.say(texts.KB_THEME_PREFILLED.format(theme=texts.esc(theme_label(theme))))
        self._ask(conv, turn)

    def _consent_request(self, turn: _Turn, theme: str = "") -> None:
        turn.say(texts.WELCOME)
        suffix = f":{theme}" if theme else ""
        turn.say(
            texts.PRIVACY_NOTICE + "\n\n" + texts.CONSENT_QUESTION,
            (
                (
                    Button(texts.BTN_CONSENT_YES, f"consent:yes{suffix}"),
                    Button(texts.BTN_CONSENT_NO, "consent:no"),
                ),
            ),
        )

    def _on_kb_button(
        self,
        session: Session,
        event: Incoming,
        conv: Conversation | None,
        value: str,
        turn: _Turn,
        now: datetime,
    ) -> None:
        assert self.questions is not None
        action = self.questions.on_button(session, value, owner=event.chat_id)
        turn.toast = action.toast
        turn.messages.extend(action.messages)
        if action.forward_text is not None:
            self._forward_question(session, event, action.forward_text, turn)
        if action.apply_theme is not None:
            if conv is not None:
                turn.say(texts.KB_INTAKE_IN_PROGRESS)
                self._ask(conv, turn)
            elif session.get(Consent, event.user_id) is None:
                self._consent_request(turn, action.apply_theme)
            else:
                self._begin(session, event, action.apply_theme, turn, now)
        elif conv is not None and action.messages:
            # The form is waiting for an answer: ask it again after the card.
            self._ask(conv, turn)

    def _forward_question(
        self, session: Session, event: Incoming, question: str, turn: _Turn
    ) -> None:
        """Send a question nobody could answer to the animators (of the firm's territory)."""
        last = session.exec(
            select(Need.territory_id)
            .where(Need.telegram_user_id == event.user_id, col(Need.territory_id).is_not(None))
            .order_by(col(Need.id).desc())
            .limit(1)
        ).first()
        territories = [t for t in self.territories.territories if last in (None, t.id)]
        text = texts.KB_FORWARDED_TO_ANIMATOR.format(question=texts.esc(question[:1500]))
        for territory in territories:
            for animator in territory.animators:
                if animator.telegram_user_id is not None:
                    turn.others.append((str(animator.telegram_user_id), Outgoing(text)))

    def _mark_choice(self, event: Incoming, label: str, turn: _Turn) -> None:
        if event.message_id is not None and event.origin_html is not None:
            turn.messages.append(
                Outgoing(
                    f"{event.origin_html}\n\n✅ <b>{texts.esc(label)}</b>",
                    edit_message_id=event.message_id,
                )
            )

    def _on_delete(
        self,
        session: Session,
        event: Incoming,
        conv: Conversation | None,
        value: str,
        turn: _Turn,
        now: datetime,
    ) -> None:
        if value == "yes":
            self._mark_choice(event, texts.BTN_DELETE_YES, turn)
            erase_user_data(session, user_id=event.user_id, chat_id=event.chat_id, now=now)
            turn.say(texts.DELETED)
            return
        self._mark_choice(event, texts.BTN_DELETE_NO, turn)
        turn.say(texts.DELETE_KEPT)
        if conv is not None:
            self._ask(conv, turn)

    def _button_answer(
        self, conv: Conversation, value: str, found: _Prefetched | None = None
    ) -> _Accept | Invalid:
        step = conv.step
        if step == "siret" and value == "skip":
            return _Accept({"siret": None, "siren": None, "firm": None, "firm_pending": None})
        if step == "firm_confirm":
            return self._firm_confirm_answer(conv, value)
        if step == "firm_choice":
            return _firm_choice_answer(conv, value)
        if step == "location_choice":
            if value == "none":
                return _Accept({"location_candidates": None}, goto="location")
            commune = self.geography.by_insee(value)
            if commune is None or value not in (conv.answers.get("location_candidates") or []):
                return Invalid(texts.STALE_BUTTON)
            accepted = _Accept({**_commune_answers(commune), "location_candidates": None})
            return _with_candidates(accepted, conv, commune, found)
        if step == "theme" and value in THEMES:
            return _Accept({"theme": value})
        if step == "urgency" and value in texts.URGENCY_LABELS:
            return _Accept({"urgency": value})
        if step == "contact_method" and value in texts.CONTACT_LABELS:
            if value == "telegram":
                return _Accept({"contact_method": value, "contact_value": None})
            return _Accept({"contact_method": value}, goto="contact_value")
        if step == "summary" and value in {"confirm", "edit", "cancel"}:
            return _Accept({"_summary": value})
        if step == "edit_choice" and (value in EDITABLE or value == "back"):
            return _Accept({"_edit": value})
        return Invalid(texts.STALE_BUTTON)

    def _button_label(self, conv: Conversation, value: str) -> str | None:
        step = conv.step
        if step == "siret":
            return texts.BTN_NO_SIRET
        if step == "firm_confirm":
            return {"yes": texts.BTN_FIRM_YES, "no": texts.BTN_FIRM_NO}.get(value)
        if step == "firm_choice":
            if value == "none":
                return texts.BTN_NONE_OF_THESE_FIRMS
            candidates = conv.answers.get("firm_candidates") or []
            index = int(value) if value.isdigit() else len(candidates)
            return _candidate_label(candidates[index]) if index < len(candidates) else None
        if step == "location_choice":
            if value == "none":
                return texts.BTN_NONE_OF_THESE_COMMUNES
            commune = self.geography.by_insee(value)
            return commune.label() if commune else None
        if step == "theme":
            return THEMES.get(value)
        if step == "urgency":
            return texts.URGENCY_LABELS.get(value)
        if step == "contact_method":
            return texts.CONTACT_LABELS.get(value)
        if step == "summary":
            return {"confirm": texts.BTN_CONFIRM, "edit": texts.BTN_EDIT,
                    "cancel": texts.BTN_CANCEL}.get(value)
        if step == "edit_choice":
            return texts.FIELD_LABELS.get(value, texts.BTN_BACK_TO_SUMMARY)
        return None

    # --- text and media ------------------------------------------------------------------
    def _on_text(
        self,
        session: Session,
        event: Incoming,
        conv: Conversation | None,
        turn: _Turn,
        now: datetime,
    ) -> None:
        draft = session.get(ChatDraft, event.chat_id)
        if draft is not None and draft.kind == "sat_comment" and self.followup is not None:
            self._merge(self.followup.on_comment(session, draft, event.value, now=now), turn)
            return
        if draft is not None and self.meetings is not None:
            self._merge(self.meetings.on_draft_text(session, draft, event.value, now=now),
                        turn)
            return
        if conv is None:
            if self.questions is None:
                turn.say(texts.NEED_CONSENT_FIRST)
                return
            # Outside the form, typed text is a question for the knowledge base.
            turn.messages.extend(
                self.questions.answer(session, event.value, channel=event.channel, now=now,
                                      owner=event.chat_id)
            )
            return
        if self._answered_as_question(session, event, conv, turn, now):
            return
        if conv.step in BUTTON_STEPS:
            self._ask(conv, turn, preface=texts.USE_BUTTONS)
            return
        outcome = self._text_answer(conv, event.value, turn.found)
        if isinstance(outcome, Invalid):
            self._ask(conv, turn, preface=outcome.reason)
            return
        self._advance(session, event, conv, outcome, turn, now)

    def _answered_as_question(
        self, session: Session, event: Incoming, conv: Conversation, turn: _Turn, now: datetime
    ) -> bool:
        """A question typed in the middle of the form: answer it, then ask the form again."""
        if self.questions is None:
            return False
        if conv.step in BUTTON_STEPS:
            answer = self.questions.ask(event.value)
            if answer.out_of_scope:
                return False
        elif conv.step in QUESTION_STEPS and looks_like_question(event.value):
            answer = self.questions.ask(event.value)
        else:
            return False
        turn.messages.extend(
            self.questions.answer(session, event.value, channel=event.channel, now=now,
                                  answer=answer, owner=event.chat_id)
        )
        self._ask(conv, turn)
        return True

    def _on_media(self, event: Incoming, conv: Conversation | None, turn: _Turn) -> None:
        reason = texts.MEDIA_NOT_UNDERSTOOD.get(event.value, texts.MEDIA_NOT_UNDERSTOOD["other"])
        if conv is None:
            turn.say(reason + "\n" + texts.NEED_CONSENT_FIRST)
            return
        if conv.step not in BUTTON_STEPS:
            reason = f"{reason} {texts.MEDIA_ANSWER_IN_TEXT}"
        self._ask(conv, turn, preface=reason)

    def _text_answer(
        self, conv: Conversation, text: str, found: _Prefetched | None = None
    ) -> _Accept | Invalid:
        step = conv.step
        if step == "company_name":
            return _accept_or(parse_company_name(text), "company_name")
        if step == "siret":
            return _siret_answer(text, found)
        if step == "location":
            accepted = self._location_answer(text)
            if isinstance(accepted, _Accept) and accepted.goto is None:
                commune = self.geography.by_insee(accepted.values["commune_insee"])
                return _with_candidates(accepted, conv, commune, found)
            return accepted
        if step == "description":
            return _accept_or(parse_description(text), "description")
        if step == "contact_value":
            parser = parse_phone if conv.answers.get("contact_method") == "phone" else parse_email
            return _accept_or(parser(text), "contact_value")
        return Invalid(texts.USE_BUTTONS)

    def _firm_confirm_answer(self, conv: Conversation, value: str) -> _Accept | Invalid:
        """"Oui": take the directory's name (and commune, for a SIRET); "Non": ask again."""
        pending = conv.answers.get("firm_pending")
        if not pending or value not in {"yes", "no"}:
            return Invalid(texts.STALE_BUTTON)
        if value == "no":
            return _Accept({"firm_pending": None}, goto="siret", preface=texts.FIRM_CORRECT)
        record = FirmRecord.from_json(pending)
        values: dict[str, Any] = {
            "firm_pending": None,
            "firm": stored_facts(record),
            "company_name": (record.name or "")[:120] or conv.answers.get("company_name"),
        }
        if record.siret and not pending.get("by_siren"):
            values.update({"siret": record.siret, "siren": None})
            commune = self.geography.by_insee(record.commune_insee or "")
            if commune is not None:
                values.update({**_commune_answers(commune), "location_candidates": None})
        else:
            # A SIREN gives the head office: the establishment's commune is still asked.
            values.update({"siret": None, "siren": record.siren})
        return _Accept(values)

    def _location_answer(self, text: str) -> _Accept | Invalid:
        query = " ".join(text.split())
        if len(query) < 2:
            return Invalid(texts.LOCATION_TOO_SHORT)
        found = self.geography.resolve(query, limit=MAX_COMMUNE_BUTTONS)
        if found.status == "found":
            return _Accept({**_commune_answers(found.communes[0]), "location_candidates": None})
        if found.status == "ambiguous":
            return _Accept(
                {"location_candidates": [c.insee for c in found.communes[:MAX_COMMUNE_BUTTONS]]},
                goto="location_choice",
            )
        return Invalid(texts.LOCATION_NOT_FOUND.format(query=texts.esc(query[:60])))

    # --- moving through the form ---------------------------------------------------------
    def _advance(
        self,
        session: Session,
        event: Incoming,
        conv: Conversation,
        outcome: _Accept,
        turn: _Turn,
        now: datetime,
    ) -> None:
        values = dict(outcome.values)
        summary_action = values.pop("_summary", None)
        edit_action = values.pop("_edit", None)
        if summary_action == "confirm":
            self._submit(session, event, conv, turn, now)
            return
        if summary_action == "cancel":
            _drop_conversation(session, conv, turn)
            turn.say(texts.CANCELLED)
            return
        if summary_action == "edit":
            self._goto(conv, "edit_choice", now)
            self._ask(conv, turn)
            return
        if edit_action is not None:
            if edit_action == "back":
                self._goto(conv, "summary", now)
            else:
                conv.return_to_summary = True
                self._goto(conv, EDITABLE[edit_action], now)
            self._ask(conv, turn)
            return
        answers = dict(conv.answers)
        answers.update(values)
        conv.answers = answers
        if outcome.goto is not None and (
            outcome.goto != "firm_choice" or answers.get("firm_candidates")
        ):
            next_step = outcome.goto
        elif conv.return_to_summary:
            next_step = "summary"
        else:
            next_step = self._next_step(conv.step, answers)
        if next_step == "summary":
            conv.return_to_summary = False
        self._goto(conv, next_step, now)
        self._ask(conv, turn, preface=outcome.preface)

    def _next_step(self, step: str, answers: dict[str, Any]) -> str:
        index = FIELD_ORDER.index(step) if step in FIELD_ORDER else -1
        for candidate in FIELD_ORDER[index + 1 :]:
            if candidate == "firm_confirm" and not answers.get("firm_pending"):
                continue
            if candidate == "company_name" and answers.get("company_name"):
                continue  # given by the company directory
            if candidate == "location" and answers.get("commune_insee"):
                continue
            if candidate == "location_choice" and not answers.get("location_candidates"):
                continue
            if candidate == "firm_choice" and not answers.get("firm_candidates"):
                continue
            if candidate == "contact_value" and answers.get("contact_method") in (None, "telegram"):
                continue
            if candidate == "theme" and answers.get("theme"):
                continue  # chosen from a programme card before the form started
            return candidate
        return "summary"

    def _goto(self, conv: Conversation, step: str, now: datetime) -> None:
        conv.step = step
        conv.version += 1
        conv.updated_at = now

    # --- questions -----------------------------------------------------------------------
    def _ask(self, conv: Conversation, turn: _Turn, *, preface: str | None = None) -> None:
        """Append the pending question of this conversation, with its buttons."""
        text, buttons = self._question(conv)
        if preface:
            text = f"{preface}\n\n{text}"
        turn.say(text, buttons)

    def _question(self, conv: Conversation) -> tuple[str, tuple[tuple[Button, ...], ...]]:
        step, answers = conv.step, conv.answers
        if step == "company_name":
            return texts.ASK_COMPANY_NAME, ()
        if step == "siret":
            question = texts.ASK_SIRET_LOOKUP if self.firms is not None else texts.ASK_SIRET
            return question, ((Button(texts.BTN_NO_SIRET, "siret:skip"),),)
        if step == "firm_confirm":
            return self._firm_found_text(answers.get("firm_pending") or {}), ((
                Button(texts.BTN_FIRM_YES, "fc:yes"), Button(texts.BTN_FIRM_NO, "fc:no"),
            ),)
        if step == "firm_choice":
            candidates = answers.get("firm_candidates") or []
            buttons = [Button(_candidate_label(c), f"fch:{i}") for i, c in enumerate(candidates)]
            buttons.append(Button(texts.BTN_NONE_OF_THESE_FIRMS, "fch:none"))
            commune = texts.esc(answers.get("commune_name") or "")
            return texts.ASK_FIRM_CHOICE.format(commune=commune), _rows(buttons, 1)
        if step == "location":
            return texts.ASK_LOCATION, ()
        if step == "location_choice":
            communes = [
                c for c in (self.geography.by_insee(code)
                            for code in answers.get("location_candidates") or [])
                if c is not None
            ]
            buttons = [Button(c.label(), f"loc:{c.insee}") for c in communes]
            buttons.append(Button(texts.BTN_NONE_OF_THESE_COMMUNES, "loc:none"))
            return texts.ASK_LOCATION_CHOICE, _rows(buttons, 2)
        if step == "theme":
            buttons = [Button(label, f"theme:{key}") for key, label in THEMES.items()]
            return texts.ASK_THEME, _rows(buttons, 1)
        if step == "description":
            return texts.ASK_DESCRIPTION, ()
        if step == "urgency":
            buttons = [Button(label, f"urg:{key}") for key, label in texts.URGENCY_LABELS.items()]
            return texts.ASK_URGENCY, _rows(buttons, 2)
        if step == "contact_method":
            buttons = [Button(label, f"cm:{key}") for key, label in texts.CONTACT_LABELS.items()]
            return texts.ASK_CONTACT_METHOD, _rows(buttons, 1)
        if step == "contact_value":
            if answers.get("contact_method") == "phone":
                return texts.ASK_PHONE, ()
            return texts.ASK_EMAIL, ()
        if step == "summary":
            return self._summary(answers), (
                (Button(texts.BTN_CONFIRM, "sum:confirm"),),
                (Button(texts.BTN_EDIT, "sum:edit"), Button(texts.BTN_CANCEL, "sum:cancel")),
            )
        if step == "edit_choice":
            buttons = [Button(texts.FIELD_LABELS[key], f"edit:{key}") for key in EDITABLE]
            buttons.append(Button(texts.BTN_BACK_TO_SUMMARY, "edit:back"))
            return texts.ASK_EDIT_FIELD, _rows(buttons, 2)
        raise ValueError(f"unknown step {step!r}")

    def _firm_found_text(self, pending: dict[str, Any]) -> str:
        """What the directory found, in one message, for the firm to confirm."""
        details = []
        activity = activity_text(pending)
        if activity:
            details.append(activity)
        if pending.get("size_label"):
            details.append(pending["size_label"])
        template = texts.FIRM_FOUND_SIREN if pending.get("by_siren") else texts.FIRM_FOUND
        # The directory writes communes in capitals; the geography has the usual spelling.
        known = self.geography.by_insee(pending.get("commune_insee") or "")
        commune = known.name if known else (pending.get("commune_name") or "—").title()
        text = template.format(
            name=texts.esc(pending.get("name") or ""),
            commune=texts.esc(commune),
            details="".join(f", {texts.esc(d)}" for d in details),
        )
        if pending.get("etat_administratif") == "F":
            text = f"{texts.FIRM_CLOSED_WARNING}\n{text}"
        return text

    def _summary(self, answers: dict[str, Any]) -> str:
        def line(key: str, value: str | None) -> str:
            shown = texts.esc(value) if value else f"<i>{texts.NOT_GIVEN}</i>"
            return f"<b>{texts.FIELD_LABELS[key]}</b> : {shown}"

        method = answers.get("contact_method", "telegram")
        contact = texts.CONTACT_LABELS.get(method, method)
        if method == "phone" and answers.get("contact_value"):
            contact = f"{contact} ({format_phone(answers['contact_value'])})"
        elif method == "email" and answers.get("contact_value"):
            contact = f"{contact} ({answers['contact_value']})"
        commune = answers.get("commune_name")
        if commune:
            commune = f"{commune} ({answers.get('commune_insee')})"
        firm = answers.get("firm")
        facts = []
        if firm:
            facts = [line("activity", " · ".join(
                p for p in (activity_text(firm), firm.get("size_label") or "") if p) or None)]
        siret = answers.get("siret")
        if not siret and answers.get("siren"):
            siret = f"SIREN {answers['siren']}"
        return "\n".join(
            [
                texts.SUMMARY_TITLE,
                line("company_name", answers.get("company_name")),
                line("siret", siret),
                *facts,
                line("location", commune),
                line("theme", theme_label(answers["theme"]) if answers.get("theme") else None),
                line("description", answers.get("description")),
                line("urgency", texts.URGENCY_LABELS.get(answers.get("urgency", ""))),
                line("contact", contact),
                "",
                texts.SUMMARY_QUESTION,
            ]
        )

    # --- submission ----------------------------------------------------------------------
    def _submit(
        self, session: Session, event: Incoming, conv: Conversation, turn: _Turn, now: datetime
    ) -> None:
        answers = conv.answers
        territory = self.territories.for_epci(answers.get("epci_siren"))
        reference = next_reference(session, now.astimezone(self.tz).year)
        consent = session.get(Consent, conv.user_id)
        need = Need(
            reference=reference,
            status=NeedStatus.SUBMITTED.value,
            channel=conv.channel,
            theme=answers["theme"],
            urgency=answers["urgency"],
            firm_name=answers["company_name"],
            siret=answers.get("siret"),
            description=answers["description"],
            contact_method=answers["contact_method"],
            contact_value=answers.get("contact_value"),
            telegram_chat_id=conv.chat_id if conv.channel == "telegram" else None,
            telegram_user_id=conv.user_id if conv.channel == "telegram" else None,
            commune_insee=answers["commune_insee"],
            commune_name=answers["commune_name"],
            reply_token=new_reply_token(),
            firm=answers.get("firm"),
            epci_siren=answers.get("epci_siren"),
            epci_name=answers.get("epci_name"),
            territory_id=territory.id if territory else None,
            consent_at=consent.given_at if consent else now,
            created_at=now,
            updated_at=now,
        )
        session.add(need)
        session.flush()
        assert need.id is not None
        session.add(NeedEvent(need_id=need.id, from_status=None, to_status=need.status,
                              actor=f"{conv.channel}:{conv.user_id}", at=now))
        _drop_conversation(session, conv, turn)
        routed = self.routing.route_new_need(session, need, now) if self.routing else None
        if routed is not None:
            turn.others.extend(routed.animator_messages)
        lines = [texts.NEED_RECORDED.format(reference=reference)]
        if routed is not None and routed.partner_names:
            names = ", ".join(texts.esc(n) for n in routed.partner_names)
            lines.append(texts.ROUTED_TO.format(partners=names))
        if territory is not None:
            lines.append(
                texts.NEXT_STEP_ANIMATOR.format(
                    animator=texts.esc(territory.animators[0].name),
                    territory=texts.esc(territory.name),
                    days=territory.response_days,
                )
            )
        else:
            lines.append(
                texts.NEXT_STEP_NO_TERRITORY.format(commune=texts.esc(answers["commune_name"]))
            )
        lines.append(texts.AFTER_RECORDED)
        turn.say("\n".join(lines))


def _accept_or(value: str | Invalid, key: str) -> _Accept | Invalid:
    return value if isinstance(value, Invalid) else _Accept({key: value})


def _peek(session: Session, chat_id: int) -> tuple[str, dict[str, Any]] | None:
    """The conversation's step and answers, read before the transaction that changes them."""
    conv = _load_conversation(session, chat_id)
    return (conv.step, dict(conv.answers)) if conv is not None else None


_CONVERSATION = Conversation.__table__  # type: ignore[attr-defined]
_CONVERSATION_FIELDS = tuple(c.key for c in _CONVERSATION.c if not c.primary_key)
_LOAD_CONVERSATION = select(_CONVERSATION).where(
    _CONVERSATION.c.chat_id == bindparam("chat_id")
)
_SAVE_CONVERSATION = (
    update(_CONVERSATION)
    .where(_CONVERSATION.c.chat_id == bindparam("where_chat_id"),
           _CONVERSATION.c.version == bindparam("where_version"))
    .values({key: bindparam(f"new_{key}") for key in _CONVERSATION_FIELDS})
)
# Attempts at a turn when another instance changed the conversation in the meantime.
_ATTEMPTS = 3


class ConversationConflict(RuntimeError):
    """The conversation changed since it was read (another instance saved it first)."""


_DELETE_CONVERSATION = delete(_CONVERSATION).where(
    _CONVERSATION.c.chat_id == bindparam("chat_id")
)


def _load_conversation(session: Session, chat_id: int) -> Conversation | None:
    """The chat's conversation as a plain object (not tracked by the session), or None.

    A new conversation is added to the session (`_new_conversation`), which inserts it; a
    loaded one is written back by `_save_conversation` if it changed and deleted by
    `_drop_conversation`.
    """
    row = session.execute(_LOAD_CONVERSATION, {"chat_id": chat_id}).first()
    return Conversation(**row._mapping) if row is not None else None


def _saved_state(conv: Conversation) -> tuple[Any, ...]:
    # Copies of the dict columns, so that a change made in place is seen too.
    return tuple(
        dict(value) if isinstance(value := getattr(conv, key), dict) else value
        for key in _CONVERSATION_FIELDS
    )


def _save_conversation(session: Session, conv: Conversation, read_version: int) -> None:
    """Write the conversation back if nobody saved it since it was read (else conflict)."""
    conv.version = max(conv.version, read_version + 1)
    params = {f"new_{key}": getattr(conv, key) for key in _CONVERSATION_FIELDS}
    params["where_chat_id"] = conv.chat_id
    params["where_version"] = read_version
    if session.execute(_SAVE_CONVERSATION, params).rowcount != 1:  # type: ignore[attr-defined]
        raise ConversationConflict(f"conversation {conv.chat_id} changed since version "
                                   f"{read_version}")


def _drop_conversation(session: Session, conv: Conversation, turn: _Turn) -> None:
    if conv in session:  # created in this same turn
        session.delete(conv)
    else:
        session.execute(_DELETE_CONVERSATION, {"chat_id": conv.chat_id})
    turn.dropped = True


def _wants_search(answers: dict[str, Any]) -> bool:
    """Search the directory by name only when the firm gave a name but no SIRET."""
    return bool(answers.get("company_name")) and not (
        answers.get("siret") or answers.get("siren") or answers.get("firm")
    )


def _siret_answer(text: str, found: _Prefetched | None) -> _Accept | Invalid:
    """A SIRET (or a SIREN the directory knows); the directory's answer is confirmed next."""
    digits = _NUMBER_SEPARATORS.sub("", text)
    lookup = found.lookup if found and found.step == "siret" and found.key == digits else None
    record = lookup.record if lookup is not None else None
    if record is not None and record.diffusible and record.name:
        # A SIREN gives the legal unit and its head office, which may be elsewhere.
        pending = {**record.to_json(), "by_siren": len(digits) == 9}
        return _Accept({"firm_pending": pending}, goto="firm_confirm")
    parsed = parse_siret(text)
    if isinstance(parsed, Invalid):
        return parsed
    # Not found, masked or unreachable: the number stays as typed and the form goes on.
    notice = texts.FIRM_NOT_FOUND if lookup is not None and lookup.status == "not_found" else None
    return _Accept({"siret": parsed, "siren": None, "firm": None, "firm_pending": None},
                   preface=notice)


def _with_candidates(
    accepted: _Accept, conv: Conversation, commune: Commune | None, found: _Prefetched | None
) -> _Accept:
    """Offer the directory's firms of that commune, when a name search found some."""
    if (
        commune is None or found is None or found.step != conv.step
        or found.key != commune.insee or not found.candidates
        or not _wants_search(conv.answers)
    ):
        return accepted
    values = {**accepted.values,
              "firm_candidates": [r.to_json() for r in found.candidates[:MAX_FIRM_BUTTONS]]}
    return _Accept(values, goto="firm_choice")


def _firm_choice_answer(conv: Conversation, value: str) -> _Accept | Invalid:
    candidates = conv.answers.get("firm_candidates") or []
    if value == "none":
        return _Accept({"firm_candidates": None})
    if not value.isdigit() or int(value) >= len(candidates):
        return Invalid(texts.STALE_BUTTON)
    record = FirmRecord.from_json(candidates[int(value)])
    return _Accept({"firm_candidates": None, "firm": stored_facts(record),
                    "siret": record.siret, "siren": None if record.siret else record.siren})


def _candidate_label(candidate: dict[str, Any]) -> str:
    """'FONDERIE DU CHAROLAIS · fonderie de fonte', cut to fit a phone's button."""
    name = candidate.get("name") or texts.FIRM_UNKNOWN_NAME
    label = candidate.get("naf_label")
    text = f"{name} · {label[:1].lower()}{label[1:]}" if label else name
    return text if len(text) <= FIRM_BUTTON_LABEL else text[: FIRM_BUTTON_LABEL - 1] + "…"


def _commune_answers(commune: Commune) -> dict[str, Any]:
    return {
        "commune_insee": commune.insee,
        "commune_name": commune.name,
        "epci_siren": commune.epci_siren,
        "epci_name": commune.epci_name,
    }


# Built once: constructing the statement per update costs more than running it.
_PROCESSED_INSERT = {
    is_pg: (pg_insert if is_pg else sqlite_insert)(
        ProcessedUpdate.__table__  # type: ignore[attr-defined]
    ).on_conflict_do_nothing(
        index_elements=["update_id"]
    )
    for is_pg in (False, True)
}

_PREFIXES = {
    "siret": "siret",
    "firm_confirm": "fc",
    "firm_choice": "fch",
    "location_choice": "loc",
    "theme": "theme",
    "urgency": "urg",
    "contact_method": "cm",
    "summary": "sum",
    "edit_choice": "edit",
}


def _button_prefix(step: str) -> str | None:
    return _PREFIXES.get(step)


def next_reference(session: Session, year: int) -> str:
    """Allocate the next public reference of the year (atomic on SQLite and PostgreSQL)."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    table = NeedSequence.__table__  # type: ignore[attr-defined]
    stmt = (
        insert(table)
        .values(year=year, last=1)
        .on_conflict_do_update(index_elements=["year"], set_={"last": table.c.last + 1})
        .returning(table.c.last)
    )
    number = session.execute(stmt).scalar_one()
    return f"TI-{year}-{number:04d}"


def erase_user_data(session: Session, *, user_id: int, chat_id: int, now: datetime) -> int:
    """Erase a person's data: form, consent; needs keep only anonymous, countable fields."""
    session.execute(delete(Conversation).where(col(Conversation.chat_id) == chat_id))
    session.execute(delete(ChatDraft).where(col(ChatDraft.chat_id) == chat_id))
    session.execute(delete(Consent).where(col(Consent.user_id) == user_id))
    needs = session.exec(select(Need).where(Need.telegram_user_id == user_id)).all()
    # A sole trader's SIRET is personal data: drop the cached directory answers too.
    keys = {f"siret:{n.siret}" for n in needs if n.siret}
    keys |= {f"siren:{n.firm['siren']}" for n in needs if n.firm and n.firm.get("siren")}
    if keys:
        session.execute(delete(FirmLookup).where(col(FirmLookup.key).in_(keys)))
    for need in needs:
        need.firm = None
        need.firm_name = None
        need.siret = None
        need.description = None
        need.contact_value = None
        need.telegram_chat_id = None
        need.telegram_user_id = None
        need.anonymized_at = now
        need.updated_at = now
        session.add(need)
    return len(needs)


# Kept for the CLI's listing: how many needs exist (used by `relais needs`).
def count_needs(session: Session) -> int:
    """Number of stored needs."""
    return session.exec(select(func.count()).select_from(Need)).one()
