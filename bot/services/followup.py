"""Follow-up: relances to partners, alerts to animators, long-open needs, satisfaction.

Every timed action is claimed by a conditional UPDATE (`reminded_at IS NULL`, ...) in the
transaction that writes its message to the outbox, so it happens once, across crashes and
across processes. Delays count French working days (`bot.services.workdays`):

* a partner that has not acknowledged within its `ack_days` gets one reminder email the
  next working day after the deadline;
* at `escalate_factor` × the delay the animators are alerted on Telegram, with buttons to
  reassign the need or take it;
* a need open for `stale_days` days: the animators are asked to close or keep it (again
  every `stale_days` days while it stays open);
* a need closed as helped: the firm is asked once, on its channel, to rate the help 1–5
  with an optional comment; a late answer is still taken.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from bot.catalogue import label, t
from bot.messages import Message, Text
from bot.services import outbox
from bot.services.animators import chats_of
from bot.services.emails import optional_reply_address, partner_relance_email
from bot.services.lifecycle import OPEN_STATUSES
from bot.services.routing import animator_chats, need_view
from bot.services.types import Button, Reply
from bot.services.workdays import add_working_days
from knowledge.territories import TerritoryDirectory
from storage.models import ChatDraft, Need, NeedRouting, NeedStatus, Satisfaction

__all__ = ["SLICE", "FollowUpCounts", "FollowUpService"]

log = logging.getLogger(__name__)

OPEN = tuple(s.value for s in OPEN_STATUSES)
# Rows a slice of a pass reads at most: one transaction, a few tens of milliseconds. On
# PostgreSQL a slice's Python work runs on the event loop between two statements: reading
# 200 routings with their needs held it 50–85 ms on a loaded machine, 100 half that.
SLICE = 100
COMMENT_MAX = 1000


@dataclass(frozen=True, slots=True)
class FollowUpCounts:
    """What one pass did."""

    relances: int = 0
    alerts: int = 0
    stale: int = 0

    def __add__(self, other: FollowUpCounts) -> FollowUpCounts:
        """The counts of two passes (or slices) together."""
        return FollowUpCounts(self.relances + other.relances, self.alerts + other.alerts,
                              self.stale + other.stale)


class FollowUpService:
    """Relances, alerts and the close-or-keep question; the firm's satisfaction."""

    def __init__(self, territories: TerritoryDirectory, *, tz: ZoneInfo, mail_domain: str,
                 reply_local: str | None, stale_days: int = 30,
                 escalate_factor: int = 2) -> None:
        self.territories = territories
        self.tz = tz
        self.mail_domain = mail_domain
        self.reply_local = reply_local
        self.stale_days = stale_days
        self.escalate_factor = escalate_factor

    # --- relances and alerts ---------------------------------------------------------------
    def run_due(self, session: Session, *, now: datetime) -> FollowUpCounts:
        """Send what is due at `now` (each action once), every slice in this transaction."""
        total = FollowUpCounts()
        for step in (self.routing_slice, self.stale_slice):
            while True:
                counts, seen = step(session, now=now)
                total = total + counts
                if seen < SLICE:
                    break
        return total

    def routing_slice(self, session: Session, *, now: datetime,
                      limit: int = SLICE) -> tuple[FollowUpCounts, int]:
        """Relances and alerts of at most `limit` routings due; (what was sent, rows seen).

        Only routings whose `followup_at` has come are read (an index); each leaves with
        the date of its next step, or none, so a next slice never sees it again.
        """
        today = now.astimezone(self.tz).date()
        relances = alerts = 0
        rows = session.exec(
            select(NeedRouting, Need).join(Need, col(NeedRouting.need_id) == col(Need.id))
            .where(col(NeedRouting.followup_at) <= now)
            .order_by(col(NeedRouting.followup_at), col(NeedRouting.id)).limit(limit)).all()
        for routing, need in rows:
            following: datetime | None = None
            if routing.status == "routed" and need.status in OPEN:
                routed_on = routing.routed_at.astimezone(self.tz).date()
                deadline = add_working_days(routed_on, routing.ack_days)
                reminded = routing.reminded_at is not None
                if not reminded and today > deadline:
                    reminded = True  # by this pass, or by another process that claimed it
                    if self._claim(session, routing, "reminded_at", now):
                        self._relance(session, need, routing, routed_on, deadline, now)
                        relances += 1
                late = add_working_days(routed_on, routing.ack_days * self.escalate_factor)
                escalated = routing.escalated_at is not None
                if not escalated and today > late:
                    escalated = True
                    if self._claim(session, routing, "escalated_at", now):
                        self._alert(session, need, routing, now)
                        alerts += 1
                # A day is late from the next midnight, people's time.
                steps = [self._day_after(day) for day, done in
                         ((deadline, reminded), (late, escalated)) if not done]
                following = min(steps, default=None)
            session.execute(update(NeedRouting).where(col(NeedRouting.id) == routing.id)
                            .values(followup_at=following)
                            .execution_options(synchronize_session=False))
        return FollowUpCounts(relances, alerts), len(rows)

    def _day_after(self, day: date) -> datetime:
        """The first instant of the day after `day`, people's time, in UTC."""
        return datetime.combine(day + timedelta(days=1), time(), tzinfo=self.tz).astimezone(UTC)

    @staticmethod
    def _claim(session: Session, routing: NeedRouting, column: str, now: datetime) -> bool:
        field = getattr(NeedRouting, column)
        result = session.execute(update(NeedRouting).where(
            col(NeedRouting.id) == routing.id, col(field).is_(None)).values({column: now})
            .execution_options(synchronize_session=False))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def _relance(self, session: Session, need: Need, routing: NeedRouting, routed_on: object,
                 deadline: object, now: datetime) -> None:
        territory = self.territories.get(need.territory_id or "")
        animator = territory.animators[0] if territory else None
        draft = partner_relance_email(
            need=need_view(need, territory, tz=self.tz), partner_name=routing.partner_name,
            partner_email=routing.partner_email, partner_id=routing.partner_id,
            routed_on=routed_on, deadline=deadline,  # type: ignore[arg-type]
            animator_name=animator.name if animator else "Relais",
            animator_email=str(animator.email) if animator else "",
            mail_domain=self.mail_domain,
            need_reply_address=optional_reply_address(self.reply_local, need.reply_token,
                                                      self.mail_domain))
        outbox.enqueue_payload(
            session, channel="email", recipient=routing.partner_email, now=now,
            payload={"email": draft.to_payload(), "need_id": need.id,
                     "territory_id": need.territory_id, "key": draft.message_id.strip("<>")})

    def _alert(self, session: Session, need: Need, routing: NeedRouting, now: datetime) -> None:
        territory = self.territories.get(need.territory_id or "")
        if territory is None:
            return
        days = routing.ack_days * self.escalate_factor
        buttons = (Button(label("animator.btn_reassign"), f"ani:re:{need.id}"),)
        if need.status != NeedStatus.IN_PROGRESS.value:  # already taken: nothing to take
            buttons += (Button(label("animator.btn_take"), f"ani:take:{need.id}"),)
        message = Message(
            t("animator.followup_alert", partner=routing.partner_name,
              reference=need.reference, days=days, firm=need.firm_name or "—"),
            (buttons,))
        for chat in animator_chats(session, territory):
            outbox.enqueue(session, channel="telegram", recipient=chat, messages=[message],
                           now=now, claimed=False)

    def stale_slice(self, session: Session, *, now: datetime,
                    limit: int = SLICE) -> tuple[FollowUpCounts, int]:
        """Close-or-keep questions for at most `limit` needs due; (what was sent, rows seen).

        Due: open for `stale_days` and not asked within them. Read through the index on
        (status, stale_asked_at, created_at): never asked, or asked long enough ago. Each
        need read is claimed, so it leaves the due set.
        """
        limit_at = now - timedelta(days=self.stale_days)
        needs: list[Need] = []
        for status in OPEN:
            # One status at a time, in the index's order: both planners then walk the
            # index from its start and stop at `limit`, whatever their row estimates.
            for due in (
                select(Need).where(col(Need.status) == status,
                                   col(Need.stale_asked_at).is_(None),
                                   col(Need.created_at) <= limit_at)
                .order_by(col(Need.created_at)),
                select(Need).where(col(Need.status) == status,
                                   col(Need.stale_asked_at) <= limit_at,
                                   col(Need.created_at) <= limit_at)
                .order_by(col(Need.stale_asked_at)),
            ):
                if len(needs) < limit:
                    needs += session.exec(due.limit(limit - len(needs))).all()
        # The slice's cost is bounded by its needs, in a fixed number of statements: one
        # claim for all of them, the territories' chats read once, one INSERT of questions.
        # The claim is a compare-and-set on "still due": a need another process asked
        # first is no longer due, and is not returned.
        claimed = set(session.execute(
            update(Need.__table__)  # type: ignore[attr-defined]
            .where(col(Need.id).in_([n.id for n in needs]), col(Need.status).in_(OPEN),
                   col(Need.created_at) <= limit_at,
                   or_(col(Need.stale_asked_at).is_(None),
                       col(Need.stale_asked_at) <= limit_at))
            .values(stale_asked_at=now).returning(Need.__table__.c.id)  # type: ignore[attr-defined]
        ).scalars()) if needs else set()
        asked = [need for need in sorted(needs, key=lambda n: n.id or 0) if need.id in claimed]
        territories = {need.territory_id: self.territories.get(need.territory_id or "")
                       for need in asked}
        chats = chats_of(session, [found for found in territories.values() if found])
        stale = 0
        # Built and written 25 needs at a time: on PostgreSQL each INSERT gives the event
        # loop its turn, and what is built in between stays short.
        for start in range(0, len(asked), 25):
            questions: list[tuple[str, str, Message]] = []
            for need in asked[start:start + 25]:
                territory = territories[need.territory_id]
                if territory is None:
                    continue
                stale += 1
                message = Message(
                    t("animator.followup_stale", reference=need.reference,
                      days=self.stale_days, firm=need.firm_name or "—"),
                    ((Button(label("animator.btn_close"), f"ani:close:{need.id}"),
                      Button(label("animator.btn_keep_open"), f"ani:keep:{need.id}")),))
                questions += [("telegram", chat, message) for chat in chats[territory.id]]
            outbox.enqueue_unclaimed(session, questions, now=now)
        return FollowUpCounts(stale=stale), len(needs)

    # --- satisfaction -----------------------------------------------------------------------
    def ask_satisfaction(self, session: Session, need: Need, *,
                         now: datetime) -> Message | None:
        """Once per need closed as helped: the rating question for the firm's chat, if any.

        The question says the need is closed: the caller sends it instead of its own news
        of the closing, so the firm reads that once.
        """
        assert need.id is not None
        if session.exec(select(Satisfaction).where(Satisfaction.need_id == need.id)).first():
            return None
        session.add(Satisfaction(need_id=need.id, territory_id=need.territory_id,
                                 asked_at=now))
        if need.telegram_chat_id is None:
            return None
        buttons = tuple(Button(str(n), f"sat:{need.id}:{n}") for n in range(1, 6))
        return Message(t("firm.satisfaction_question", reference=need.reference), (buttons,))

    def on_button(self, session: Session, user_id: int, chat_id: int, value: str, *,
                  now: datetime) -> Reply:
        """`sat:<need>:<1..5|skip>` pressed by the firm."""
        need_part, _, answer = value.partition(":")[2].partition(":")
        need = session.get(Need, int(need_part)) if need_part.isdigit() else None
        if need is None or need.telegram_user_id != user_id:
            return Reply(toast=label("common.stale_button"))
        row = session.exec(select(Satisfaction).where(Satisfaction.need_id == need.id)).first()
        if row is None:
            return Reply(toast=label("common.stale_button"))
        if answer == "skip":
            draft = session.get(ChatDraft, chat_id)
            if draft is not None and draft.kind == "sat_comment":
                session.delete(draft)
            return Reply([Message(t("firm.satisfaction_thanks"))])
        if not answer.isdigit() or not 1 <= int(answer) <= 5:
            return Reply(toast=label("common.stale_button"))
        if row.score is not None:
            return Reply(toast=label("firm.satisfaction_already"))
        row.score, row.answered_at = int(answer), now
        session.add(row)
        draft = session.get(ChatDraft, chat_id) or ChatDraft(
            chat_id=chat_id, user_id=user_id, kind="sat_comment", step="comment")
        draft.kind, draft.step, draft.user_id = "sat_comment", "comment", user_id
        draft.data = {"need_id": need.id}
        draft.updated_at = now
        session.add(draft)
        result = Reply([Message(t("firm.satisfaction_ask_comment"), (
            (Button(label("firm.btn_no_comment"), f"sat:{need.id}:skip"),),))])
        self._tell_animators(session, result, need, t(
            "animator.satisfaction_rating", score=row.score, firm=need.firm_name or "—",
            reference=need.reference))
        return result

    def on_comment(self, session: Session, draft: ChatDraft, text: str, *,
                   now: datetime) -> Reply:
        """The optional comment after a rating."""
        session.delete(draft)
        need = session.get(Need, int(draft.data.get("need_id", 0)))
        row = session.exec(select(Satisfaction).where(
            Satisfaction.need_id == (need.id if need else -1))).first()
        if need is None or row is None or need.anonymized_at is not None:
            # An anonymised need keeps nothing the firm writes (the retention pass does not
            # look for comments).
            return Reply([Message(t("firm.satisfaction_thanks"))])
        row.comment = " ".join(text.split())[:COMMENT_MAX]
        session.add(row)
        result = Reply([Message(t("firm.satisfaction_thanks"))])
        if row.comment:
            # The rating reached the animators when it was given: only the comment is news.
            self._tell_animators(session, result, need, t(
                "animator.satisfaction_comment", firm=need.firm_name or "—",
                reference=need.reference, comment=row.comment))
        return result

    def _tell_animators(self, session: Session, result: Reply, need: Need,
                        text: Text) -> None:
        territory = self.territories.get(need.territory_id or "")
        if territory is None:
            return
        for chat in animator_chats(session, territory):
            result.others.append((chat, Message(text)))
