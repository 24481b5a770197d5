"""Meetings: an animator proposes, the firm answers, everyone is invited and reminded.

The proposal is a short guided exchange stored as a `ChatDraft` (date → duration → place →
participants → recap). Sending it writes, in one transaction, the meeting, the firm's
Telegram proposal, and one email per partner and animator with an iCalendar invitation.

Reminders are `reminder` rows planned when the meeting is confirmed, one per offset of
`REMINDER_OFFSETS`. `fire_due` sends the due ones: a row moves ``pending → sent`` with a
conditional UPDATE in the same transaction as the messages it writes to the outbox, so a
reminder goes out once even if the process dies right after, and two processes never both
send it. Moving or cancelling a meeting cancels its pending rows; a reminder that fell due
while the bot was down is sent if the meeting is still ahead, skipped (and logged) if not.

When a reminder is due: its emails never leave more than `EMAIL_EARLY` (1 s) before its due
time, however early the scheduler fires it (they wait in the outbox until then); its
Telegram message leaves early only as much as a burst needs to pass Telegram's flood limit
on time (`bot/reminders.py`: the burst's count / 25 per second, at most 2 minutes).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, update
from sqlmodel import Session, col, select

from bot.catalogue import label, t
from bot.messages import Bullets, Message, Text
from bot.services import outbox
from bot.services.animators import animator_of, territories_of, user_chats
from bot.services.emails import MeetingView, meeting_email
from bot.services.ics import Attendee, Invitation, invitation_ics
from bot.services.lifecycle import CLOSED_STATUSES
from bot.services.types import Button, Reply
from bot.services.when import (
    When,
    format_day,
    format_slot,
    parse_duration,
    parse_when,
    unusual_reasons,
)
from knowledge.taxonomy import theme_noun
from knowledge.territories import Territory, TerritoryDirectory
from storage.models import (
    ChatDraft,
    Meeting,
    MeetingAttendee,
    MeetingStatus,
    Need,
    NeedRouting,
    Outbox,
    Reminder,
)

__all__ = ["DEFAULT_OFFSETS", "EMAIL_EARLY", "MeetingService"]

log = logging.getLogger(__name__)

DEFAULT_OFFSETS: tuple[timedelta, ...] = (timedelta(hours=24), timedelta(hours=2))
DEFAULT_DURATION = 60
# How long before its due time a reminder's email may leave at most. A burst fired ahead
# for Telegram's sake writes its emails then, held in the outbox (`not_before`) until
# this much before their due time: the email worker's head start on a burst, no more.
EMAIL_EARLY = timedelta(seconds=1)
# The outbox kind of a reminder's emails: those still held when their meeting is moved or
# cancelled are withdrawn.
REMINDER_EMAIL = "reminder"
# The durations offered as buttons, in minutes (labels: animator.btn_duration_<minutes>).
DURATIONS = (30, 60, 90, 120)
MAX_UPCOMING = 20
_URL = re.compile(r"https://[^\s<>\"']{4,490}", re.IGNORECASE)

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class FiredReminder:
    """What one `fire_due` pass did (for logs, metrics and the benchmark)."""

    sent: int = 0
    skipped: int = 0
    cancelled: int = 0


class MeetingService:
    """Proposing, answering, moving and cancelling meetings; planning and firing reminders."""

    def __init__(
        self,
        territories: TerritoryDirectory,
        *,
        tz: ZoneInfo,
        mail_domain: str,
        offsets: Sequence[timedelta] = DEFAULT_OFFSETS,
    ) -> None:
        self.territories = territories
        self.tz = tz
        self.mail_domain = mail_domain
        self.offsets = tuple(offsets)

    # --- access ----------------------------------------------------------------------------
    def _territories_of(self, session: Session, user_id: int) -> list[Territory]:
        return territories_of(session, self.territories, user_id)

    def _organizer(self, session: Session, user_id: int) -> tuple[str, str | None]:
        for territory in self._territories_of(session, user_id):
            animator = animator_of(session, territory, user_id)
            if animator is not None:
                return animator.name, str(animator.email)
        return "Relais", None

    def _allowed_need(self, session: Session, user_id: int, need_id: int) -> Need | None:
        need = session.get(Need, need_id)
        allowed = {t.id for t in self._territories_of(session, user_id)}
        return need if need is not None and need.territory_id in allowed else None

    def _allowed_meeting(self, session: Session, user_id: int,
                         meeting_id: int) -> Meeting | None:
        meeting = session.get(Meeting, meeting_id)
        allowed = {t.id for t in self._territories_of(session, user_id)}
        return meeting if meeting is not None and meeting.territory_id in allowed else None

    def is_animator(self, session: Session, user_id: int) -> bool:
        """Whether this Telegram user animates a territory."""
        return bool(self._territories_of(session, user_id))

    # --- commands ---------------------------------------------------------------------------
    def command_rdv(self, session: Session, user_id: int, chat_id: int, args: str, *,
                    now: datetime) -> Reply:
        """`/rdv` lists the territory's upcoming meetings; `/rdv TI-…` proposes one."""
        if not self.is_animator(session, user_id):
            return Reply([Message(t("common.meeting_animators_only"))])
        reference = args.strip().upper()
        if not reference:
            return self.upcoming_for_animator(session, user_id, now=now)
        need = session.exec(select(Need).where(Need.reference == reference)).first()
        if need is None or need.id is None or self._allowed_need(session, user_id,
                                                                 need.id) is None:
            return Reply([Message(t("animator.meeting_need_not_found",
                                    reference=reference[:20]))])
        return self._start_draft(session, user_id, chat_id, need, now=now)

    def upcoming_for_animator(self, session: Session, user_id: int, *,
                              now: datetime) -> Reply:
        """The territory's meetings still ahead (cancelled ones left out), soonest first."""
        territory_ids = [t.id for t in self._territories_of(session, user_id)]
        meetings = session.exec(
            select(Meeting).where(col(Meeting.territory_id).in_(territory_ids),
                                  Meeting.end_at > now,
                                  Meeting.status != MeetingStatus.CANCELLED.value)
            .order_by(col(Meeting.start_at)).limit(MAX_UPCOMING)
        ).all()
        if not meetings:
            return Reply([Message(t("animator.meetings_empty"))])
        lines: list[Text] = []
        rows: list[tuple[Button, ...]] = []
        for meeting in meetings:
            need = session.get(Need, meeting.need_id)
            firm = (need.firm_name if need else None) or "—"
            reference = need.reference if need else "—"
            lines.append(t("animator.meeting_line", slot=self._slot(meeting), firm=firm,
                           reference=reference, status=_status(meeting.status)))
            local = meeting.start_at.astimezone(self.tz)
            rows.append((Button(f"{local:%d/%m %H:%M} · {firm}"[:60], f"mt:show:{meeting.id}"),))
        return Reply([Message(t("animator.meetings_title", count=len(meetings))
                              + _bullets(lines), tuple(rows))])

    def upcoming_for_firm(self, session: Session, user_id: int, *,
                          now: datetime) -> list[Message]:
        """`/mesrdv`: the firm's meetings still ahead."""
        rows = session.exec(
            select(Meeting, Need).where(Meeting.need_id == Need.id,
                                        Need.telegram_user_id == user_id,
                                        col(Meeting.firm_invited).is_(True),
                                        Meeting.end_at > now,
                                        Meeting.status != MeetingStatus.CANCELLED.value)
            .order_by(col(Meeting.start_at)).limit(MAX_UPCOMING)
        ).all()
        if not rows:
            return [Message(t("firm.my_meetings_empty"))]
        lines = [t("firm.my_meeting_line", slot=self._slot(meeting), place=self._place(meeting),
                   reference=need.reference,
                   status=label(f"firm.my_meeting_status_{meeting.status}"))
                 for meeting, need in rows]
        return [Message(t("firm.my_meetings_title") + _bullets(lines))]

    # --- the animator's draft ---------------------------------------------------------------
    def _start_draft(self, session: Session, user_id: int, chat_id: int, need: Need, *,
                     now: datetime, meeting: Meeting | None = None) -> Reply:
        if meeting is None and need.status in CLOSED_STATUSES:
            return Reply([Message(t("animator.meeting_need_closed"))])
        data: dict[str, Any] = {"need_id": need.id}
        if meeting is not None:
            data["meeting_id"] = meeting.id
            data["duration"] = int((meeting.end_at - meeting.start_at).total_seconds() // 60)
        draft = session.get(ChatDraft, chat_id)
        if draft is None:
            draft = ChatDraft(chat_id=chat_id, user_id=user_id, kind="meeting", step="when")
        draft.user_id, draft.kind, draft.step, draft.data = user_id, "meeting", "when", data
        draft.updated_at = now
        session.add(draft)
        return Reply([self._ask_when(need, meeting)])

    def _ask_when(self, need: Need, meeting: Meeting | None) -> Message:
        firm = need.firm_name or "—"
        abandon = ((Button(label("animator.btn_abandon"), "md:abort"),),)
        if meeting is not None:
            return Message(t("animator.meeting_ask_when_move", firm=firm,
                             reference=need.reference, slot=self._slot(meeting)), abandon)
        return Message(t("animator.meeting_ask_when", firm=firm, reference=need.reference),
                       abandon)

    def on_draft_text(self, session: Session, draft: ChatDraft, text: str, *,
                      now: datetime) -> Reply:
        """A typed answer to the pending question of a draft (animator or firm)."""
        if draft.kind == "other_slot":
            return self._firm_other_slot_text(session, draft, text, now=now)
        need = self._allowed_need(session, draft.user_id, int(draft.data.get("need_id", 0)))
        if need is None:
            session.delete(draft)
            return Reply([Message(t("animator.meeting_not_found"))])
        if draft.step == "when":
            return self._when_answer(session, draft, need, text, now=now)
        if draft.step == "duration":
            minutes = parse_duration(text)
            if minutes is None:
                return Reply([self._ask_duration(
                    draft, preface=t("animator.meeting_bad_duration"))])
            return self._duration_chosen(session, draft, need,
                                         int(minutes.total_seconds() // 60), now=now)
        if draft.step == "place":
            return self._place_answer(session, draft, need, text, now=now)
        # Steps answered with buttons: the same question again.
        return Reply([self._question(session, draft, need,
                                     preface=t("animator.meeting_use_buttons"))])

    def _when_answer(self, session: Session, draft: ChatDraft, need: Need, text: str, *,
                     now: datetime) -> Reply:
        parsed = parse_when(text, now=now, tz=self.tz)
        if not isinstance(parsed, When):
            reason = t(f"animator.when_error_{parsed.error.value}",
                       detail=parsed.detail or text[:40])
            meeting = session.get(Meeting, draft.data["meeting_id"]) if draft.data.get(
                "meeting_id") else None
            ask = self._ask_when(need, meeting)
            return Reply([Message(reason + ask.text, ask.buttons)])
        start = parsed.start.astimezone(self.tz)
        draft.data = {**draft.data, "start": start.isoformat()}
        # "vers 14h": the hour is kept as typed, and the animator is told which one.
        preface = t("animator.meeting_when_approximate", time=_hm(start)) if (
            parsed.approximate) else None
        if parsed.minutes is not None:
            # "de 14h à 16h": the length is known, the duration question is skipped.
            draft.data = {**draft.data, "duration": parsed.minutes, "duration_set": True}
            end = start + timedelta(minutes=parsed.minutes)
            noted = t("animator.meeting_slot_noted", slot=format_slot(start, end, tz=self.tz))
            return self._duration_chosen(session, draft, need, parsed.minutes, now=now,
                                         preface=noted if preface is None else preface + noted)
        duration = int(draft.data.get("duration", DEFAULT_DURATION))
        reasons = unusual_reasons(start, start + timedelta(minutes=duration), tz=self.tz)
        if reasons:
            self._goto(draft, "unusual", now)
            return Reply([_prefaced(self._ask_unusual(draft, reasons), preface)])
        self._goto(draft, "duration", now)
        return Reply([self._ask_duration(draft, preface=preface)])

    def _ask_unusual(self, draft: ChatDraft, reasons: list[str]) -> Message:
        start = datetime.fromisoformat(draft.data["start"])
        duration = int(draft.data.get("duration", DEFAULT_DURATION))
        words = []
        for reason in reasons:
            if reason == "early_or_late":
                words.append(label("animator.unusual_early_late"))
            elif reason == "weekend":
                words.append(label("animator.unusual_weekend"))
            elif reason.startswith("holiday:"):
                words.append(t("animator.unusual_holiday", holiday=reason[8:]).plain())
        return Message(
            t("animator.meeting_unusual", reasons=", ".join(words),
              slot=format_slot(start, start + timedelta(minutes=duration), tz=self.tz)),
            ((Button(label("animator.btn_keep_slot"), "md:keep"),
              Button(label("animator.btn_change_slot"), "md:redate")),))

    def _ask_duration(self, draft: ChatDraft, *, preface: Text | None = None) -> Message:
        start = datetime.fromisoformat(draft.data["start"]).astimezone(self.tz)
        text = t("animator.meeting_ask_duration",
                 slot_day=format_day(start, tz=self.tz).capitalize(),
                 time=f"{start.hour}h{start.minute:02d}" if start.minute else f"{start.hour}h")
        if preface:
            text = preface + text
        buttons = tuple(Button(label(f"animator.btn_duration_{minutes}"), f"md:dur:{minutes}")
                        for minutes in DURATIONS)
        return Message(text, (buttons[:2], buttons[2:]))

    def _duration_chosen(self, session: Session, draft: ChatDraft, need: Need, minutes: int,
                         *, now: datetime, preface: Text | None = None) -> Reply:
        draft.data = {**draft.data, "duration": minutes}
        start = datetime.fromisoformat(draft.data["start"])
        end = start + timedelta(minutes=minutes)
        # A longer meeting may now run past 20h or into a holiday: ask once more.
        reasons = unusual_reasons(start, end, tz=self.tz)
        if reasons and not draft.data.get("unusual_ok"):
            self._goto(draft, "unusual", now)
            return Reply([_prefaced(self._ask_unusual(draft, reasons), preface)])
        if draft.data.get("meeting_id"):
            self._goto(draft, "recap", now)
        elif "place" in draft.data:
            self._goto(draft, "recap", now)
        else:
            self._goto(draft, "place", now)
        return Reply([self._question(session, draft, need, preface=preface)])

    def _place_answer(self, session: Session, draft: ChatDraft, need: Need, text: str, *,
                      now: datetime) -> Reply:
        cleaned = " ".join(text.split())
        url = _URL.search(cleaned)
        if url is not None:
            place = cleaned.replace(url.group(0), "").strip(" -–:,") or label(
                "common.place_video")
            draft.data = {**draft.data, "place": place[:300], "video_url": url.group(0)}
        elif 3 <= len(cleaned) <= 300:
            draft.data = {**draft.data, "place": cleaned, "video_url": None}
        else:
            return Reply([self._question(session, draft, need,
                                         preface=t("animator.meeting_bad_place"))])
        return self._after_place(session, draft, need, now=now)

    def _after_place(self, session: Session, draft: ChatDraft, need: Need, *,
                     now: datetime) -> Reply:
        if "partners" not in draft.data:
            routed = self._routed(session, need)
            draft.data = {**draft.data, "partners": [r.partner_id for r in routed],
                          "firm": need.telegram_chat_id is not None}
        self._goto(draft, "who", now)
        return Reply([self._question(session, draft, need)])

    def _question(self, session: Session, draft: ChatDraft, need: Need, *,
                  preface: Text | None = None) -> Message:
        """The pending question of a draft, with its buttons."""
        if draft.step == "when":
            meeting = session.get(Meeting, draft.data["meeting_id"]) if draft.data.get(
                "meeting_id") else None
            out = self._ask_when(need, meeting)
        elif draft.step == "unusual":
            start = datetime.fromisoformat(draft.data["start"])
            duration = int(draft.data.get("duration", DEFAULT_DURATION))
            out = self._ask_unusual(draft, unusual_reasons(
                start, start + timedelta(minutes=duration), tz=self.tz))
        elif draft.step == "duration":
            out = self._ask_duration(draft)
        elif draft.step == "place":
            at_firm = t("animator.btn_place_firm", commune=need.commune_name or "—").plain()
            out = Message(t("animator.meeting_ask_place"),
                          ((Button(at_firm[:60], "md:place:firm"),),
                           (Button(label("animator.btn_abandon"), "md:abort"),)))
        elif draft.step == "who":
            out = self._ask_who(session, draft, need)
        else:
            out = self._recap(session, draft, need)
        if preface:
            return Message(preface + out.text, out.buttons)
        return out

    def _routed(self, session: Session, need: Need) -> list[NeedRouting]:
        return list(session.exec(
            select(NeedRouting).where(NeedRouting.need_id == need.id,
                                      NeedRouting.status != "removed")
            .order_by(col(NeedRouting.id))))

    def _ask_who(self, session: Session, draft: ChatDraft, need: Need) -> Message:
        chosen = set(draft.data.get("partners", []))
        rows: list[tuple[Button, ...]] = []
        if need.telegram_chat_id is not None:
            mark = "✅ " if draft.data.get("firm") else "☐ "
            firm = t("animator.btn_who_firm", firm=need.firm_name or "—").plain()
            rows.append((Button((mark + firm)[:60], "md:who:firm"),))
        for routing in self._routed(session, need):
            mark = "✅ " if routing.partner_id in chosen else "☐ "
            rows.append((Button((mark + routing.partner_name)[:60],
                                f"md:who:{routing.partner_id}"[:64]),))
        rows.append((Button(label("animator.btn_who_done"), "md:who:ok"),
                     Button(label("animator.btn_abandon"), "md:abort")))
        return Message(t("animator.meeting_ask_who"), tuple(rows))

    def _recap(self, session: Session, draft: ChatDraft, need: Need) -> Message:
        start = datetime.fromisoformat(draft.data["start"])
        end = start + timedelta(minutes=int(draft.data.get("duration", DEFAULT_DURATION)))
        meeting_id = draft.data.get("meeting_id")
        if meeting_id:
            meeting = session.get(Meeting, meeting_id)
            assert meeting is not None
            place = self._place(meeting)
            who = self._who_of_meeting(session, meeting, need)
        else:
            place = _with_link(draft.data.get("place") or "", draft.data.get("video_url"))
            who = self._who_of_draft(session, draft, need)
        send = label("animator.btn_send_update" if meeting_id else "animator.btn_send_invite")
        return Message(
            t("animator.meeting_recap", reference=need.reference,
              slot=format_slot(start, end, tz=self.tz), place=place, who=", ".join(who)),
            ((Button(send, "md:send"),),
             (Button(label("animator.btn_change_slot"), "md:redate"),
              Button(label("animator.btn_abandon"), "md:abort"))))

    def _who_of_draft(self, session: Session, draft: ChatDraft, need: Need) -> list[str]:
        chosen = set(draft.data.get("partners", []))
        names = [need.firm_name or "—"] if draft.data.get("firm") else []
        names += [r.partner_name for r in self._routed(session, need) if r.partner_id in chosen]
        return names

    def _who_of_meeting(self, session: Session, meeting: Meeting, need: Need) -> list[str]:
        names = [need.firm_name or "—"] if meeting.firm_invited else []
        names += [a.name for a in self._attendees(session, meeting) if a.kind == "partner"]
        return names

    def _goto(self, draft: ChatDraft, step: str, now: datetime) -> None:
        draft.step = step
        draft.updated_at = now
        # JSON columns are compared by identity: reassigning marks the row dirty.
        draft.data = dict(draft.data)

    # --- buttons ----------------------------------------------------------------------------
    def on_button(self, session: Session, user_id: int, chat_id: int, value: str, *,
                  now: datetime) -> Reply:
        """`md:…` (a draft's buttons), `mt:…` (a meeting's buttons, animator or firm)."""
        prefix, _, rest = value.partition(":")
        if prefix == "md":
            return self._draft_button(session, user_id, chat_id, rest, now=now)
        action, _, args = rest.partition(":")
        if action in {"ok", "alt", "no"}:
            return self._firm_answer(session, user_id, chat_id, action, args, now=now)
        if not self.is_animator(session, user_id):
            return Reply(toast=label("common.meeting_animators_only"))
        target = args.partition(":")[0]
        if not target.isdigit():
            return Reply(toast=label("common.meeting_stale_button"))
        if action == "new":
            need = self._allowed_need(session, user_id, int(target))
            if need is None:
                return Reply(toast=label("animator.meeting_not_your_territory"))
            return self._start_draft(session, user_id, chat_id, need, now=now)
        meeting = self._allowed_meeting(session, user_id, int(target))
        if meeting is None:
            return Reply(toast=label("animator.meeting_not_your_territory"))
        need = session.get(Need, meeting.need_id)
        assert need is not None
        if action == "show":
            return Reply([self._detail(session, meeting, need)])
        if meeting.status == MeetingStatus.CANCELLED.value:
            return Reply(toast=label("animator.meeting_already_cancelled"))
        if action == "move":
            return self._start_draft(session, user_id, chat_id, need, now=now, meeting=meeting)
        if action == "cancel":
            return Reply([Message(
                t("animator.meeting_ask_cancel", slot=self._slot(meeting),
                  firm=need.firm_name or "—"),
                ((Button(label("animator.btn_confirm_cancel"), f"mt:cancelok:{meeting.id}"),
                  Button(label("animator.btn_keep_meeting"), f"mt:keep:{meeting.id}")),))])
        if action == "keep":
            return Reply([Message(t("animator.meeting_kept"))])
        if action == "cancelok":
            return self._cancel(session, meeting, need, now=now)
        return Reply(toast=label("common.meeting_stale_button"))

    def _detail(self, session: Session, meeting: Meeting, need: Need) -> Message:
        text = t("animator.meeting_detail", reference=need.reference,
                 firm=need.firm_name or "—", slot=self._slot(meeting),
                 place=self._place(meeting),
                 who=", ".join(self._who_of_meeting(session, meeting, need)) or "—",
                 status=_status(meeting.status))
        if meeting.status == MeetingStatus.CANCELLED.value:
            return Message(text)
        return Message(text, _move_or_cancel(meeting))

    def _draft_button(self, session: Session, user_id: int, chat_id: int, value: str, *,
                      now: datetime) -> Reply:
        draft = session.get(ChatDraft, chat_id)
        if draft is None or draft.kind != "meeting" or draft.user_id != user_id:
            return Reply(toast=label("common.meeting_stale_button"))
        if value == "abort":
            session.delete(draft)
            return Reply([Message(t("animator.meeting_abandoned"))])
        need = self._allowed_need(session, user_id, int(draft.data.get("need_id", 0)))
        if need is None:
            session.delete(draft)
            return Reply(toast=label("animator.meeting_not_your_territory"))
        action, _, arg = value.partition(":")
        if action == "redate":
            self._goto(draft, "when", now)
            draft.data = {k: v for k, v in draft.data.items() if k not in {"unusual_ok"}}
            return Reply([self._question(session, draft, need)])
        if action == "keep" and draft.step == "unusual":
            draft.data = {**draft.data, "unusual_ok": True}
            if "duration" in draft.data and draft.data.get("duration_set"):
                return self._duration_chosen(session, draft, need,
                                             int(draft.data["duration"]), now=now)
            self._goto(draft, "duration", now)
            return Reply([self._ask_duration(draft)])
        if action == "dur" and draft.step == "duration" and arg.isdigit():
            draft.data = {**draft.data, "duration_set": True}
            return self._duration_chosen(session, draft, need, int(arg), now=now)
        if action == "place" and draft.step == "place" and arg == "firm":
            place = t("common.place_at_firm", commune=need.commune_name or "—").plain()
            draft.data = {**draft.data, "video_url": None, "place": place}
            return self._after_place(session, draft, need, now=now)
        if action == "who" and draft.step == "who":
            return self._who_button(session, draft, need, arg, now=now)
        if action == "send" and draft.step == "recap":
            session.delete(draft)
            if draft.data.get("meeting_id"):
                return self._move(session, draft, need, now=now)
            return self._create(session, draft, need, user_id, now=now)
        return Reply(toast=label("common.meeting_stale_button"))

    def _who_button(self, session: Session, draft: ChatDraft, need: Need, arg: str, *,
                    now: datetime) -> Reply:
        chosen = list(draft.data.get("partners", []))
        if arg == "ok":
            if not chosen and not draft.data.get("firm"):
                return Reply(toast=label("animator.meeting_nobody"))
            self._goto(draft, "recap", now)
            return Reply([self._question(session, draft, need)])
        if arg == "firm" and need.telegram_chat_id is not None:
            draft.data = {**draft.data, "firm": not draft.data.get("firm")}
        elif arg in {r.partner_id for r in self._routed(session, need)}:
            chosen = [p for p in chosen if p != arg] if arg in chosen else [*chosen, arg]
            draft.data = {**draft.data, "partners": chosen}
        else:
            return Reply(toast=label("common.meeting_stale_button"))
        self._goto(draft, "who", now)
        return Reply([self._ask_who(session, draft, need)])

    # --- sending ----------------------------------------------------------------------------
    def _create(self, session: Session, draft: ChatDraft, need: Need, user_id: int, *,
                now: datetime) -> Reply:
        assert need.id is not None
        start = datetime.fromisoformat(draft.data["start"])
        end = start + timedelta(minutes=int(draft.data.get("duration", DEFAULT_DURATION)))
        organizer, organizer_email = self._organizer(session, user_id)
        firm_invited = bool(draft.data.get("firm")) and need.telegram_chat_id is not None
        uid_seed = f"{need.reference}|{start.isoformat()}|{now.isoformat()}|{user_id}"
        meeting = Meeting(
            uid=f"rdv-{hashlib.sha256(uid_seed.encode()).hexdigest()[:20]}@{self.mail_domain}",
            need_id=need.id, territory_id=need.territory_id, start_at=start, end_at=end,
            place=draft.data.get("place"), video_url=draft.data.get("video_url"),
            status=(MeetingStatus.PROPOSED if firm_invited else MeetingStatus.CONFIRMED).value,
            organizer_name=organizer, organizer_email=organizer_email,
            organizer_telegram_id=user_id, firm_invited=firm_invited,
            firm_chat_id=need.telegram_chat_id if firm_invited else None,
            created_at=now, updated_at=now)
        session.add(meeting)
        session.flush()
        assert meeting.id is not None
        chosen = set(draft.data.get("partners", []))
        for routing in self._routed(session, need):
            if routing.partner_id in chosen:
                session.add(MeetingAttendee(meeting_id=meeting.id, kind="partner",
                                            partner_id=routing.partner_id,
                                            name=routing.partner_name,
                                            email=routing.partner_email))
        if organizer_email:
            session.add(MeetingAttendee(meeting_id=meeting.id, kind="animator",
                                        name=organizer, email=organizer_email))
        session.flush()
        self._send_emails(session, meeting, need, "invite", now=now)
        result = Reply()
        if firm_invited:
            result.others.append((str(need.telegram_chat_id),
                                  self._firm_proposal(meeting, need, moved=False)))
            result.messages.append(Message(t("animator.meeting_sent",
                                             slot=self._slot(meeting))))
        else:
            self._plan_reminders(session, meeting, now=now)
            result.messages.append(Message(t("animator.meeting_sent_no_firm",
                                             slot=self._slot(meeting))))
        return result

    def _move(self, session: Session, draft: ChatDraft, need: Need, *,
              now: datetime) -> Reply:
        meeting = session.get(Meeting, draft.data["meeting_id"])
        if meeting is None or meeting.status == MeetingStatus.CANCELLED.value:
            return Reply([Message(t("animator.meeting_already_cancelled"))])
        start = datetime.fromisoformat(draft.data["start"])
        meeting.start_at = start
        meeting.end_at = start + timedelta(minutes=int(draft.data.get("duration",
                                                                       DEFAULT_DURATION)))
        meeting.sequence += 1
        meeting.updated_at = now
        meeting.status = (MeetingStatus.PROPOSED if meeting.firm_invited
                          else MeetingStatus.CONFIRMED).value
        session.add(meeting)
        self._cancel_reminders(session, meeting, note="déplacé")
        self._send_emails(session, meeting, need, "update", now=now)
        result = Reply([Message(t("animator.meeting_moved", slot=self._slot(meeting)))])
        if meeting.firm_invited and meeting.firm_chat_id is not None:
            result.others.append((str(meeting.firm_chat_id),
                                  self._firm_proposal(meeting, need, moved=True)))
        else:
            self._plan_reminders(session, meeting, now=now)
        return result

    def _cancel(self, session: Session, meeting: Meeting, need: Need, *,
                now: datetime) -> Reply:
        slot = self._slot(meeting)
        meeting.status = MeetingStatus.CANCELLED.value
        meeting.sequence += 1
        meeting.updated_at = now
        session.add(meeting)
        self._cancel_reminders(session, meeting, note="annulé")
        self._send_emails(session, meeting, need, "cancel", now=now)
        # A firm still typing another slot for this meeting has nothing left to answer.
        if meeting.firm_chat_id is not None:
            session.execute(delete(ChatDraft).where(
                col(ChatDraft.chat_id) == meeting.firm_chat_id,
                col(ChatDraft.kind) == "other_slot"))
        result = Reply([Message(t("animator.meeting_cancelled", slot=slot))])
        if meeting.firm_invited and meeting.firm_chat_id is not None:
            result.others.append((str(meeting.firm_chat_id), Message(
                t("firm.meeting_cancelled", slot=slot, reference=need.reference))))
        return result

    def _firm_proposal(self, meeting: Meeting, need: Need, *, moved: bool) -> Message:
        text = t("firm.meeting_moved" if moved else "firm.meeting_proposal",
                 reference=need.reference, slot=self._slot(meeting),
                 place=self._place(meeting), who=meeting.organizer_name)
        key = f"{meeting.id}:{meeting.sequence}"
        return Message(text, (
            (Button(label("firm.btn_meeting_confirm"), f"mt:ok:{key}"),),
            (Button(label("firm.btn_meeting_other_slot"), f"mt:alt:{key}"),),
            (Button(label("firm.btn_meeting_decline"), f"mt:no:{key}"),)))

    def _attendees(self, session: Session, meeting: Meeting) -> list[MeetingAttendee]:
        return list(session.exec(select(MeetingAttendee).where(
            MeetingAttendee.meeting_id == meeting.id).order_by(col(MeetingAttendee.id))))

    def _view(self, session: Session, meeting: Meeting, need: Need) -> MeetingView:
        return MeetingView(
            reference=need.reference, firm_name=need.firm_name or label("partner.anonymised_firm"),
            commune_name=need.commune_name or "—", theme_label=theme_noun(need.theme),
            slot=format_slot(meeting.start_at, meeting.end_at, tz=self.tz),
            place=self._place(meeting), video_url=meeting.video_url,
            participants=tuple(self._who_of_meeting(session, meeting, need))
            + ((meeting.organizer_name,) if meeting.organizer_email else ()),
            organizer_name=meeting.organizer_name, organizer_email=meeting.organizer_email)

    def _invitation(self, session: Session, meeting: Meeting, need: Need,
                    now: datetime) -> Invitation:
        view = self._view(session, meeting, need)
        return Invitation(
            uid=meeting.uid, sequence=meeting.sequence, start=meeting.start_at,
            end=meeting.end_at,
            summary=t("partner.ics_summary", firm=view.firm_name,
                      reference=need.reference).plain(),
            description=t("partner.ics_description", reference=need.reference,
                          theme=view.theme_label, firm=view.firm_name,
                          commune=view.commune_name).plain(),
            location=meeting.place or "", url=meeting.video_url or "",
            organizer_name=meeting.organizer_name,
            organizer_email=meeting.organizer_email or f"relais@{self.mail_domain}",
            attendees=tuple(Attendee(a.name, a.email) for a in self._attendees(session, meeting)),
            stamp=now, tz=str(self.tz.key))

    def _send_emails(self, session: Session, meeting: Meeting, need: Need, kind: str, *,
                     now: datetime, extra_key: str = "",
                     not_before: datetime | None = None) -> None:
        """One email per attendee (partners and the animator), through the outbox.

        `not_before` holds them there until then (a reminder fired ahead of its time).
        """
        attendees = self._attendees(session, meeting)
        if not attendees:
            return
        calendar = None
        if kind in {"invite", "update", "cancel"}:
            method = "CANCEL" if kind == "cancel" else "REQUEST"
            ics = invitation_ics(self._invitation(session, meeting, need, now),
                                 method=method)  # type: ignore[arg-type]
            calendar = (ics, method)
        view = self._view(session, meeting, need)
        for attendee in attendees:
            draft = meeting_email(kind=kind, meeting=view, to_name=attendee.name,
                                  to_email=attendee.email, uid=meeting.uid,
                                  sequence=meeting.sequence, mail_domain=self.mail_domain,
                                  calendar=calendar, extra_key=extra_key)
            outbox.enqueue_payload(
                session, channel="email", recipient=attendee.email, now=now,
                not_before=not_before, kind=REMINDER_EMAIL if kind == "reminder" else "send",
                payload={"email": draft.to_payload(), "need_id": need.id,
                         "meeting_id": meeting.id, "territory_id": need.territory_id,
                         "key": draft.message_id.strip("<>")})

    # --- the firm's answers -----------------------------------------------------------------
    def _firm_answer(self, session: Session, user_id: int, chat_id: int, action: str,
                     args: str, *, now: datetime) -> Reply:
        meeting_part, _, sequence = args.partition(":")
        meeting = session.get(Meeting, int(meeting_part)) if meeting_part.isdigit() else None
        need = session.get(Need, meeting.need_id) if meeting is not None else None
        stale = Reply(toast=label("common.meeting_stale_button"))
        if meeting is None or need is None or need.telegram_user_id != user_id:
            return stale
        # A proposal that was moved or cancelled since: its buttons mean nothing any more.
        if str(meeting.sequence) != sequence or meeting.status not in {
                MeetingStatus.PROPOSED.value, MeetingStatus.OTHER_SLOT.value}:
            return stale
        if meeting.start_at <= now:
            return stale
        slot = self._slot(meeting)
        firm = need.firm_name or "—"
        meeting.updated_at = now
        result = Reply()
        if action == "ok":
            meeting.status = MeetingStatus.CONFIRMED.value
            self._plan_reminders(session, meeting, now=now)
            result.messages.append(Message(t("firm.meeting_confirmed_ack", slot=slot)))
            note = t("animator.meeting_firm_confirmed", firm=firm, slot=slot,
                     reference=need.reference)
        elif action == "alt":
            meeting.status = MeetingStatus.OTHER_SLOT.value
            draft = session.get(ChatDraft, chat_id) or ChatDraft(
                chat_id=chat_id, user_id=user_id, kind="other_slot", step="text")
            draft.kind, draft.step, draft.user_id = "other_slot", "text", user_id
            draft.data = {"meeting_id": meeting.id}
            draft.updated_at = now
            session.add(draft)
            result.messages.append(Message(t("firm.meeting_ask_other_slot")))
            note = t("animator.meeting_firm_other_slot", firm=firm, slot=slot,
                     reference=need.reference)
        else:
            meeting.status = MeetingStatus.DECLINED.value
            result.messages.append(Message(t("firm.meeting_declined_ack")))
            note = t("animator.meeting_firm_declined", firm=firm, slot=slot,
                     reference=need.reference)
        session.add(meeting)
        self._tell_organizer(session, result, meeting, note)
        return result

    def _tell_organizer(self, session: Session, result: Reply, meeting: Meeting,
                        text: Text) -> None:
        buttons: tuple[tuple[Button, ...], ...] = ()
        if meeting.status != MeetingStatus.CONFIRMED.value:
            buttons = _move_or_cancel(meeting)
        for chat in self._organizer_chats(session, meeting):
            result.others.append((chat, Message(text, buttons)))

    def _organizer_chats(self, session: Session, meeting: Meeting) -> list[str]:
        if meeting.organizer_telegram_id is not None:
            return [str(meeting.organizer_telegram_id)]
        territory = self.territories.get(meeting.territory_id or "")
        if territory is None:
            return []
        return [str(chat) for chat in user_chats(session, territory)]

    def _firm_other_slot_text(self, session: Session, draft: ChatDraft, text: str, *,
                              now: datetime) -> Reply:
        cleaned = " ".join(text.split())
        if not 3 <= len(cleaned) <= 300:
            return Reply([Message(t("firm.meeting_bad_other_slot"))])
        session.delete(draft)
        meeting = session.get(Meeting, int(draft.data.get("meeting_id", 0)))
        need = session.get(Need, meeting.need_id) if meeting is not None else None
        result = Reply([Message(t("firm.meeting_other_slot_sent"))])
        if meeting is None or need is None or need.anonymized_at is not None:
            # An anonymised need keeps nothing the firm writes (the retention pass does not
            # look for meeting notes).
            return result
        meeting.firm_note = cleaned[:500]
        meeting.updated_at = now
        session.add(meeting)
        self._tell_organizer(session, result, meeting, t(
            "animator.meeting_firm_other_slot_text", firm=need.firm_name or "—",
            reference=need.reference, text=cleaned))
        return result

    # --- reminders --------------------------------------------------------------------------
    def _plan_reminders(self, session: Session, meeting: Meeting, *, now: datetime) -> None:
        """One pending row per offset still ahead (a reminder already late is not planned)."""
        assert meeting.id is not None
        for offset in self.offsets:
            due = self.due_time(meeting.start_at, offset)
            if due <= now:
                continue
            session.add(Reminder(meeting_id=meeting.id, sequence=meeting.sequence,
                                 offset_minutes=int(offset.total_seconds() // 60), due_at=due))

    def due_time(self, start: datetime, offset: timedelta) -> datetime:
        """When a reminder `offset` before `start` is due, in UTC.

        Whole days are counted on the wall clock ("24h" before 10:00 is 10:00 the day
        before, even across a daylight-saving change); other offsets are real durations.
        """
        if offset % timedelta(days=1) == timedelta(0):
            # Aware datetimes in one zoneinfo zone subtract on the wall clock.
            return (start.astimezone(self.tz) - offset).astimezone(UTC)
        # In UTC: the same subtraction on a Europe/Paris datetime would be wall-clock time.
        return start.astimezone(UTC) - offset

    def _cancel_reminders(self, session: Session, meeting: Meeting, *, note: str) -> None:
        session.execute(
            update(Reminder)
            .where(col(Reminder.meeting_id) == meeting.id, col(Reminder.status) == "pending")
            .values(status="cancelled", note=note))
        # A reminder fired ahead of a burst left its emails waiting in the outbox until their
        # due time: withdrawn with the meeting, if no deliverer holds them yet. Few rows: at
        # most a burst's head start (two minutes) of reminder emails.
        held = session.exec(select(Outbox).where(
            col(Outbox.channel) == "email", col(Outbox.kind) == REMINDER_EMAIL,
            col(Outbox.delivered_at).is_(None), col(Outbox.failed_at).is_(None),
            col(Outbox.claimed_until).is_(None))).all()
        withdrawn = [row.id for row in held if row.payload.get("meeting_id") == meeting.id]
        if withdrawn:
            session.execute(delete(Outbox).where(
                col(Outbox.id).in_(withdrawn), col(Outbox.claimed_until).is_(None))
                .execution_options(synchronize_session=False))

    def next_due(self, session: Session) -> datetime | None:
        """When the earliest pending reminder falls due (None when there is none)."""
        return session.exec(
            select(Reminder.due_at).where(Reminder.status == "pending")
            .order_by(col(Reminder.due_at)).limit(1)).first()

    def due_count(self, session: Session, *, until: datetime) -> int:
        """How many pending reminders fall due by `until` (overdue ones included)."""
        return int(session.exec(
            select(func.count()).select_from(Reminder).where(
                Reminder.status == "pending", Reminder.due_at <= until)).one())

    def fire_due(self, session: Session, *, now: datetime, limit: int = 200,
                 until: datetime | None = None) -> FiredReminder:
        """Send the reminders due by `until` (default `now`; at most `limit`), each once.

        `until` later than `now` sends a burst ahead of time, so that its last Telegram
        message is not late behind Telegram's rate limit; the rows are stamped with `now`.
        Their emails are held in the outbox until `EMAIL_EARLY` before their due time.
        """
        due = session.exec(
            select(Reminder, Meeting).where(Reminder.status == "pending",
                                            Reminder.due_at <= (until or now),
                                            Reminder.meeting_id == Meeting.id)
            .order_by(col(Reminder.due_at)).limit(limit)).all()
        sent = skipped = cancelled = 0
        for reminder, meeting in due:
            if meeting.status != MeetingStatus.CONFIRMED.value or (
                    meeting.sequence != reminder.sequence):
                cancelled += self._close_reminder(session, reminder, "cancelled", now,
                                                  "RDV déplacé ou annulé")
                continue
            if meeting.start_at <= now:
                # Fell due while the bot was down, and the meeting has begun: too late.
                log.warning("reminder %s of meeting %s skipped: meeting already started",
                            reminder.id, meeting.id)
                skipped += self._close_reminder(session, reminder, "skipped", now,
                                                "RDV déjà commencé")
                continue
            if not self._close_reminder(session, reminder, "sent", now, None):
                continue  # another process took it
            self._send_reminder(session, meeting, reminder, now=now)
            sent += 1
        return FiredReminder(sent=sent, skipped=skipped, cancelled=cancelled)

    @staticmethod
    def _close_reminder(session: Session, reminder: Reminder, status: str, now: datetime,
                        note: str | None) -> int:
        """Move a reminder out of `pending`; 0 if someone else already did (the claim)."""
        result = session.execute(
            update(Reminder)
            .where(col(Reminder.id) == reminder.id, col(Reminder.status) == "pending")
            .values(status=status, done_at=now, note=note)
            # Nothing reads the row after: scanning the session's objects would make a
            # batch of N claims cost N² (measured 3.2 s → 1.6 s for 1,000 due at once).
            .execution_options(synchronize_session=False))
        return int(result.rowcount)  # type: ignore[attr-defined]

    def _send_reminder(self, session: Session, meeting: Meeting, reminder: Reminder, *,
                       now: datetime) -> None:
        need = session.get(Need, meeting.need_id)
        assert need is not None
        if meeting.firm_invited and meeting.firm_chat_id is not None:
            outbox.enqueue(session, channel="telegram", recipient=str(meeting.firm_chat_id),
                           messages=[Message(t(
                               "firm.meeting_reminder", slot=self._slot(meeting),
                               reference=need.reference, place=self._place(meeting)))],
                           now=now, claimed=False)
        # Fired ahead of time for Telegram's flood limit, the emails need no head start:
        # built now, they wait in the outbox until their own due time.
        self._send_emails(session, meeting, need, "reminder", now=now,
                          extra_key=str(reminder.offset_minutes),
                          not_before=max(now, reminder.due_at - EMAIL_EARLY))

    # --- formatting -------------------------------------------------------------------------
    def _slot(self, meeting: Meeting) -> str:
        return format_slot(meeting.start_at, meeting.end_at, tz=self.tz)

    @staticmethod
    def _place(meeting: Meeting) -> str:
        if meeting.video_url:
            return _with_link(meeting.place or label("common.place_video"), meeting.video_url)
        return meeting.place or "—"


def _with_link(place: str, url: str | None) -> str:
    """A place followed by its video link, when it has one."""
    return t("common.place_with_link", place=place, url=url).plain() if url else place


def _status(status: str) -> str:
    """A meeting's status in words, for the chef de projet."""
    return label(f"animator.meeting_status_{status}")


def _bullets(lines: list[Text]) -> Text:
    """One-paragraph texts as the items of a list."""
    return Text((Bullets(tuple(line.inline() for line in lines)),))


def _move_or_cancel(meeting: Meeting) -> tuple[tuple[Button, ...], ...]:
    """The chef de projet's buttons on a meeting still ahead."""
    return ((Button(label("animator.btn_move_meeting"), f"mt:move:{meeting.id}"),
             Button(label("animator.btn_cancel_meeting"), f"mt:cancel:{meeting.id}")),)


def _hm(moment: datetime) -> str:
    """A local hour as people write it: "14h", "9h30"."""
    return f"{moment.hour}h{moment.minute:02d}" if moment.minute else f"{moment.hour}h"


def _prefaced(message: Message, preface: Text | None) -> Message:
    """The message with a line said first (a note on how the date was read)."""
    return message if preface is None else Message(preface + message.text, message.buttons)
