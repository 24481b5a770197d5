"""The mutualisation radar in the conversation: `/radar`, dismiss, propose to the firms.

Groups come from `bot.services.radar.find_groups` over the territory's open needs; their
key depends only on their members, so recomputing them finds the same group again. Firms
are only ever shown to the animator: a firm learns that others share its need, never who
they are, and is asked whether its own name may be shared.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from bot.catalogue import entries, label, t
from bot.messages import Message, Text
from bot.services.animators import territories_of
from bot.services.lifecycle import OPEN_STATUSES
from bot.services.radar import Group, NeedItem, find_groups
from bot.services.radar_objects import PEOPLE_KINDS, object_lexicon
from bot.services.routing import animator_chats
from bot.services.types import Button, Reply
from knowledge.retrieval import KnowledgeBase
from knowledge.territories import Territory, TerritoryDirectory
from storage.models import Need, RadarConsent, RadarMark

__all__ = ["RadarService", "describe", "need_items"]

OPEN = tuple(s.value for s in OPEN_STATUSES)


def need_items(needs: list[Need]) -> list[NeedItem]:
    """What the radar reads of each need (anonymised needs have no text and are left out)."""
    return [NeedItem(need_id=n.id, reference=n.reference, theme=n.theme,
                     text=n.description or "", firm=n.firm_name or "",
                     commune=n.commune_name) for n in needs if n.id is not None
            and n.description]


def describe(group: Group) -> Text:
    """What a group shares, for the animator: « 4 entreprises : régleurs-décolleteurs à former »."""
    if group.objects:
        objects = object_lexicon().objects
        first = objects.get(group.objects[0])
        if first is not None:
            kind = first.kind
            # people are recruited or trained, equipment shared; other objects (land, a
            # shuttle, a flow, a market) are named as they are
            action = (group.action if kind in PEOPLE_KINDS and group.action
                      else "share" if kind == "equipment" else "plain")
            phrase = t(f"animator.radar_object_{action}", label=first.label)
            return t("animator.radar_reason_object", count=group.firms, object=phrase)
    theme = group.theme if f"animator.radar_verb_{group.theme}" in entries() else "autre"
    verb = label(f"animator.radar_verb_{theme}")
    if not group.words:
        return t("animator.radar_reason_no_words", count=group.firms, verb=verb)
    return t("animator.radar_reason", count=group.firms, verb=verb, words=", ".join(group.words))


class RadarService:
    """Groups of firms with a shared need, for the animators of their territory."""

    def __init__(self, territories: TerritoryDirectory, kb: KnowledgeBase | None) -> None:
        self.territories = territories
        self.kb = kb

    def groups(self, session: Session, territory: Territory) -> list[Group]:
        """The territory's current groups, dismissed ones left out."""
        needs = list(session.exec(select(Need).where(Need.territory_id == territory.id,
                                                     col(Need.status).in_(OPEN))))
        dismissed = set(session.exec(select(RadarMark.group_key).where(
            RadarMark.territory_id == territory.id, RadarMark.status == "dismissed")))
        return [g for g in find_groups(need_items(needs), kb=self.kb)
                if g.key not in dismissed]

    def command(self, session: Session, user_id: int) -> Reply:
        """`/radar`: each group with its firms (for the animator only) and programmes."""
        territories = territories_of(session, self.territories, user_id)
        if not territories:
            return Reply([Message(t("common.animators_only"))])
        result = Reply()
        for territory in territories:
            groups = self.groups(session, territory)
            if not groups:
                result.messages.append(Message(t("animator.radar_empty")))
                continue
            result.messages.append(Message(t("animator.radar_title", count=len(groups))))
            for group in groups[:10]:
                result.messages.append(self._card(session, group))
        return result

    def _card(self, session: Session, group: Group) -> Message:
        lines = []
        for need_id in group.need_ids:
            need = session.get(Need, need_id)
            if need is not None:
                lines.append(t("animator.radar_line", reference=need.reference,
                               firm=need.firm_name or "—", commune=need.commune_name or "—"))
        programmes = ", ".join(title for _id, title in group.programmes)
        return Message(
            t("animator.radar_group", shared=describe(group), group_needs=Text(tuple(
                block for line in lines for block in line.blocks)),
              programmes=programmes or label("animator.radar_no_programme")),
            ((Button(label("animator.radar_btn_propose"), f"rad:ask:{group.key}"),
              Button(label("animator.radar_btn_dismiss"), f"rad:dis:{group.key}")),))

    def on_button(self, session: Session, user_id: int, value: str, *,
                  now: datetime) -> Reply:
        """`rad:dis|ask:<key>` (animator) and `rad:yes|no:<need>:<key>` (firm)."""
        parts = value.split(":")
        if len(parts) == 4 and parts[1] in {"yes", "no"} and parts[2].isdigit():
            return self._firm_answer(session, user_id, int(parts[2]), parts[3], parts[1],
                                     now=now)
        if len(parts) != 3 or parts[1] not in {"dis", "ask"}:
            return Reply(toast=label("common.stale_button"))
        for territory in territories_of(session, self.territories, user_id):
            group = next((g for g in self.groups(session, territory) if g.key == parts[2]),
                         None)
            if group is None:
                continue
            if parts[1] == "dis":
                self._mark(session, territory.id, group.key, "dismissed", now)
                return Reply([Message(t("animator.radar_dismissed"))])
            self._mark(session, territory.id, group.key, "proposed", now)
            return self._propose(session, group, now)
        if not territories_of(session, self.territories, user_id):
            return Reply(toast=label("common.animators_only"))
        return Reply([Message(t("animator.radar_gone"))])

    @staticmethod
    def _mark(session: Session, territory_id: str, key: str, status: str,
              now: datetime) -> None:
        table = RadarMark.__table__  # type: ignore[attr-defined]
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        session.execute(insert(table).values(territory_id=territory_id, group_key=key,
                                             status=status, at=now)
                        .on_conflict_do_update(index_elements=["territory_id", "group_key"],
                                               set_={"status": status, "at": now}))

    def _propose(self, session: Session, group: Group, now: datetime) -> Reply:
        result = Reply()
        asked = 0
        programmes = ", ".join(title for _id, title in group.programmes[:2])
        for need_id in group.need_ids:
            need = session.get(Need, need_id)
            if need is None or need.telegram_chat_id is None:
                continue
            known = session.exec(select(RadarConsent).where(
                RadarConsent.need_id == need_id, RadarConsent.group_key == group.key)).first()
            if known is not None:
                continue  # never asked twice
            session.add(RadarConsent(need_id=need_id, group_key=group.key, at=now))
            ask = (t("firm.radar_ask", reference=need.reference, programmes=programmes)
                   if programmes else t("firm.radar_ask_no_programme", reference=need.reference))
            result.others.append((str(need.telegram_chat_id), Message(
                ask,
                ((Button(label("firm.radar_btn_yes"), f"rad:yes:{need_id}:{group.key}"),
                  Button(label("firm.radar_btn_no"), f"rad:no:{need_id}:{group.key}")),))))
            asked += 1
        done = (t("animator.radar_proposed_none") if asked == 0
                else t("animator.radar_proposed_one") if asked == 1
                else t("animator.radar_proposed", count=asked))
        result.messages.append(Message(done))
        return result

    def _firm_answer(self, session: Session, user_id: int, need_id: int, key: str,
                     answer: str, *, now: datetime) -> Reply:
        need = session.get(Need, need_id)
        consent = session.exec(select(RadarConsent).where(
            RadarConsent.need_id == need_id, RadarConsent.group_key == key)).first()
        if need is None or consent is None or need.telegram_user_id != user_id:
            return Reply(toast=label("common.stale_button"))
        if consent.answer != "asked":
            return Reply(toast=label("common.stale_button"))
        consent.answer, consent.at = answer, now
        session.add(consent)
        result = Reply([Message(t("firm.radar_yes" if answer == "yes" else "firm.radar_no"))])
        territory = self.territories.get(need.territory_id or "")
        if territory is not None:
            note = t("animator.radar_answer_yes" if answer == "yes" else "animator.radar_answer_no",
                     firm=need.firm_name or "—", reference=need.reference)
            result.others.extend((chat, Message(note))
                                 for chat in animator_chats(session, territory))
        return result
