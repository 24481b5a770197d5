"""The mutualisation radar in the conversation: `/radar`, take out, set aside, propose.

Groups come from `bot.services.radar.find_groups` over the territory's open needs; their
key depends only on their members, so recomputing them finds the same group again. The
animator's corrections are sets of needs kept apart (`RadarApart`): a need taken out of a
group makes a set of two with each other member, a group set aside is one set, and no group
ever holds two needs of one set again, whatever needs arrive later.

Grouping thousands of needs takes a second or more of CPU: it never runs on the event loop.
Before the turn (`RadarService.prefetch`, the dispatcher's prefetch step), the open needs of
the animator's territories are read in a short transaction of their own, and the groups are
computed in a worker thread (one at a time: two animators asking at once queue there, and
the loop keeps serving everyone). The turn then only filters the dismissed groups and writes
the cards. A turn without prefetched groups (a service used on its own, tests) computes them
in place. Firms
are only ever shown to the animator: a firm learns that others share its need, never who
they are, and is asked whether its own name may be shared.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, or_
from sqlmodel import Session, col, select

from bot.catalogue import entries, label, t
from bot.messages import Message, Text
from bot.services.animators import territories_of
from bot.services.emails import french_date
from bot.services.lifecycle import OPEN_STATUSES
from bot.services.radar import Group, NeedItem, find_groups
from bot.services.radar_objects import PEOPLE_KINDS, PLAIN_PEOPLE_KINDS, object_lexicon
from bot.services.routing import animator_chats
from bot.services.types import Button, Incoming, Reply
from knowledge.retrieval import KnowledgeBase
from knowledge.territories import Territory, TerritoryDirectory
from knowledge.text import fold
from storage.db import Database, insert_for
from storage.models import Need, RadarApart, RadarConsent, RadarMark

__all__ = ["ApartRow", "Correction", "RadarPrefetch", "RadarService", "apart_rows",
           "apart_sets", "corrections", "count_corrections", "describe", "excerpt",
           "need_items", "open_items", "sets_of"]

OPEN = tuple(s.value for s in OPEN_STATUSES)
# A card offers to take out at most this many of its needs, two buttons a row: a bigger group
# is better set aside whole.
MAX_TAKE_OUT = 12
# A bigger group offers « Retirer une demande… », which lists its needs in a message of their
# own, three buttons a row, under Telegram's 100 buttons a message.
MAX_PICK = 96
# The corrections view lists this many, the most recent first (one message each).
MAX_CORRECTIONS = 10
# Cards shown by /radar; each need line of a card (of up to MAX_TAKE_OUT needs) carries the
# sentence that puts it in its group, cut to EXCERPT_CHARS, so that a wrong member is seen
# without opening the need.
MAX_CARDS = 10
EXCERPT_CHARS = 110
_SENTENCE = re.compile(r"[^.!?;\n]+[.!?;]*")
_PARIS = ZoneInfo("Europe/Paris")


def need_items(needs: list[Need]) -> list[NeedItem]:
    """What the radar reads of each need (anonymised needs have no text and are left out)."""
    return [NeedItem(need_id=n.id, reference=n.reference, theme=n.theme,
                     text=n.description or "", firm=n.firm_name or "",
                     commune=n.commune_name, commune_insee=n.commune_insee)
            for n in needs if n.id is not None
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
            # a skill or shared staff is named as it is: « cours de langue », « groupement
            # d'employeurs »
            action = (group.action if kind in PEOPLE_KINDS - PLAIN_PEOPLE_KINDS and group.action
                      else "share" if kind == "equipment" else "plain")
            phrase = t(f"animator.radar_object_{action}", label=first.label)
            if group.site:
                return t("animator.radar_reason_object_site", count=group.firms, object=phrase,
                         site=group.site)
            return t("animator.radar_reason_object", count=group.firms, object=phrase)
    if group.site:
        # firms of different trades wanting premises on one named site
        return t("animator.radar_reason_site", count=group.firms, site=group.site)
    theme = group.theme if f"animator.radar_verb_{group.theme}" in entries() else "autre"
    verb = label(f"animator.radar_verb_{theme}")
    if not group.words:
        return t("animator.radar_reason_no_words", count=group.firms, verb=verb)
    return t("animator.radar_reason", count=group.firms, verb=verb, words=", ".join(group.words))


def excerpt(text: str, group: Group) -> str:
    """The sentence of a need that says what it shares with its group, cut for a card."""
    sentences = [m.group(0).strip() for m in _SENTENCE.finditer(text[:2_000])]
    sentences = [x for x in sentences if len(x) > 3] or [text.strip()]
    chosen = None
    if group.objects:
        lexicon = object_lexicon()
        wanted = group.objects[0]
        chosen = next((x for x in sentences
                       if any(o == wanted for o, _ in lexicon.analyse(x).objects)), None)
    if chosen is None and group.words:
        words = [fold(w) for w in group.words]
        chosen = next((x for x in sentences if any(w in fold(x) for w in words)), None)
    chosen = " ".join((chosen or sentences[0]).split())
    return chosen if len(chosen) <= EXCERPT_CHARS else chosen[:EXCERPT_CHARS - 1].rstrip() + "…"


def open_items(session: Session, territory_id: str) -> list[NeedItem]:
    """The radar rows of a territory's open needs (only the columns the radar reads)."""
    rows = session.exec(select(Need.id, Need.reference, Need.theme, Need.description,
                               Need.firm_name, Need.commune_name, Need.commune_insee)
                        .where(Need.territory_id == territory_id, col(Need.status).in_(OPEN)))
    return [NeedItem(need_id=i, reference=ref, theme=theme, text=text, firm=firm or "",
                     commune=commune, commune_insee=insee)
            for i, ref, theme, text, firm, commune, insee in rows if i is not None and text]


def _undo_button(key: str) -> tuple[tuple[Button, ...], ...]:
    """The « Annuler » under the answer to a take-out or a set-aside."""
    return ((Button(label("animator.radar_btn_undo"), f"rad:undo:{key}"),),)


ApartRow = tuple[str, int]  # (set key, need id): one member of a set kept apart


def apart_rows(session: Session, territory_id: str) -> list[ApartRow]:
    """The animator's separations in a territory, one row per member of a set."""
    return [(key, need_id) for key, need_id in session.exec(
        select(RadarApart.set_key, RadarApart.need_id)
        .where(RadarApart.territory_id == territory_id)
        .order_by(col(RadarApart.set_key), col(RadarApart.need_id)))]


def sets_of(rows: list[ApartRow]) -> list[list[int]]:
    """The sets of needs kept apart (need ids, ascending), from `apart_rows`."""
    sets: dict[str, list[int]] = {}
    for key, need_id in rows:
        sets.setdefault(key, []).append(need_id)
    return list(sets.values())


def apart_sets(session: Session, territory_id: str) -> list[list[int]]:
    """The sets of needs the animator separated in a territory (need ids, ascending)."""
    return sets_of(apart_rows(session, territory_id))


@dataclass(frozen=True, slots=True)
class Correction:
    """One of the animator's past corrections: a need taken out, a group set aside."""

    # what « Rétablir » sends to undo it: the group's key, or « a-b » for a pair kept
    # from before take-outs were keyed by their group (migration 0017)
    key: str
    kind: str  # "out", "aside" or "pair"
    need_ids: tuple[int, ...]  # the taken-out need first, for "out"
    at: datetime


def _actions(rows: Iterable[ApartRow], open_ids: set[int]
             ) -> dict[tuple[str, str], tuple[int, ...]]:
    """(kind, key) -> members of each correction still bearing on two open needs or more,
    the taken-out need first for a take-out."""
    members: dict[tuple[str, str], set[int]] = {}
    taken: dict[tuple[str, str], set[int]] = {}
    for set_key, need_id in rows:
        kind, _, rest = set_key.partition("-")
        if kind == "out":
            # out-<group key>-<other member>: every set of one take-out shares the group key
            group_key, _, other = rest.rpartition("-")
            action = (kind, group_key)
            if str(need_id) != other:
                taken.setdefault(action, set()).add(need_id)
        elif kind in {"aside", "pair"}:
            action = (kind, rest)
        else:
            continue
        members.setdefault(action, set()).add(need_id)
    found = {}
    for action, ids in members.items():
        # a separation between needs no longer open changes nothing the animator sees
        if len(ids & open_ids) < 2:
            continue
        first = sorted(taken.get(action, ()))[:1] if action[0] == "out" else []
        found[action] = tuple(first + sorted(ids - set(first)))
    return found


def count_corrections(rows: list[ApartRow], open_ids: set[int]) -> int:
    """How many corrections bear on open needs (the count on /radar's button)."""
    return len(_actions(rows, open_ids))


def corrections(session: Session, territory_id: str) -> list[Correction]:
    """The territory's corrections that still bear on open needs, the most recent first."""
    open_ids = {i for i in session.exec(
        select(Need.id).join(RadarApart, col(RadarApart.need_id) == Need.id)
        .where(RadarApart.territory_id == territory_id, col(Need.status).in_(OPEN))
        .distinct()) if i is not None}
    latest: dict[str, datetime] = {}
    rows: list[ApartRow] = []
    for key, need_id, at in session.exec(
            select(RadarApart.set_key, RadarApart.need_id, RadarApart.at)
            .where(RadarApart.territory_id == territory_id)):
        rows.append((key, need_id))
        latest[key] = max(latest.get(key, at), at)
    when: dict[tuple[str, str], datetime] = {}
    for key, at in latest.items():
        kind, _, rest = key.partition("-")
        action = (kind, rest.rpartition("-")[0] if kind == "out" else rest)
        when[action] = max(when.get(action, at), at)
    found = [Correction(key=key, kind=kind, need_ids=ids, at=when[(kind, key)])
             for (kind, key), ids in _actions(rows, open_ids).items()]
    return sorted(found, key=lambda c: (c.at, c.key), reverse=True)


@dataclass(frozen=True, slots=True)
class RadarPrefetch:
    """Groups computed before the turn, off the event loop: territory id -> groups, and the
    excerpt of each need of the first groups (need id -> sentence)."""

    groups: dict[str, list[Group]]
    excerpts: dict[int, str]
    # territory id -> how many corrections bear on its open needs (the button's count)
    corrections: dict[str, int]


def _is_radar_event(event: Incoming) -> bool:
    """`/radar` and the animator's buttons (propose, dismiss) need the groups."""
    if event.kind == "command":
        return event.value == "radar"
    if event.kind == "button":
        prefix, _, rest = event.value.partition(":")
        return prefix == "rad" and rest.partition(":")[0] in {"dis", "ask", "out", "pick"}
    return False


class RadarService:
    """Groups of firms with a shared need, for the animators of their territory."""

    def __init__(self, territories: TerritoryDirectory, kb: KnowledgeBase | None,
                 db: Database | None = None) -> None:
        self.territories = territories
        self.kb = kb
        # Without a database the groups are computed inside the turn (services used alone).
        self.db = db
        # One radar at a time: it is CPU-bound, a second one would only slow both down.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relais-radar")

    async def prefetch(self, event: Incoming, peek: Callable[[int], Any]) -> RadarPrefetch | None:
        """For `/radar` and its buttons: the groups of the animator's territories, off the loop."""
        if self.db is None or not _is_radar_event(event):
            return None

        def snapshot(session: Session) -> dict[str, tuple[list[NeedItem], list[ApartRow]]]:
            return {territory.id: (open_items(session, territory.id),
                                   apart_rows(session, territory.id))
                    for territory in territories_of(session, self.territories, event.user_id)}

        items = await self.db.run(snapshot)
        if not items:
            return None  # not an animator: the turn says so
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, self._compute, items)

    def _compute(self, items: dict[str, tuple[list[NeedItem], list[ApartRow]]]
                 ) -> RadarPrefetch:
        """Groups of each territory, their excerpts and the count of corrections (runs in
        the radar's worker thread: the separations are sorted out here, not on the loop)."""
        groups = {territory: find_groups(rows, kb=self.kb, apart=sets_of(apart))
                  for territory, (rows, apart) in items.items()}
        # the open needs the radar reads (anonymised ones, without text, are left out: a
        # separation between them changes nothing the animator sees either)
        counts = {territory: count_corrections(apart, {row.need_id for row in rows})
                  for territory, (rows, apart) in items.items()}
        texts = {row.need_id: row.text for rows, _ in items.values() for row in rows}
        # a few more groups than a card list shows: dismissed ones are left out afterwards
        excerpts = {need_id: excerpt(texts[need_id], group)
                    for found in groups.values() for group in found[:2 * MAX_CARDS]
                    if len(group.need_ids) <= MAX_TAKE_OUT
                    for need_id in group.need_ids if need_id in texts}
        return RadarPrefetch(groups, excerpts, counts)

    def groups(self, session: Session, territory: Territory,
               prefetched: RadarPrefetch | None = None) -> list[Group]:
        """The territory's current groups, dismissed ones left out."""
        computed = prefetched.groups.get(territory.id) if prefetched is not None else None
        if computed is None:
            computed = find_groups(open_items(session, territory.id), kb=self.kb,
                                   apart=apart_sets(session, territory.id))
        dismissed = set(session.exec(select(RadarMark.group_key).where(
            RadarMark.territory_id == territory.id, RadarMark.status == "dismissed")))
        return [g for g in computed if g.key not in dismissed]

    def command(self, session: Session, user_id: int, prefetched: Any = None) -> Reply:
        """`/radar`: each group with its firms (for the animator only) and programmes."""
        territories = territories_of(session, self.territories, user_id)
        if not territories:
            return Reply([Message(t("common.animators_only"))])
        ready = prefetched if isinstance(prefetched, RadarPrefetch) else None
        result = Reply()
        for territory in territories:
            groups = self.groups(session, territory, ready)
            past = (ready.corrections.get(territory.id) if ready is not None else None)
            if past is None:
                past = len(corrections(session, territory.id))
            # the corrections stay reviewable: one button under the title, when there are any
            review = (((Button(t("animator.radar_btn_corrections", count=past).plain(),
                               f"rad:fix:{territory.id}"),),) if past else ())
            if not groups:
                result.messages.append(Message(t("animator.radar_empty"), review))
                continue
            result.messages.append(Message(t("animator.radar_title", count=len(groups)),
                                           review))
            for group in groups[:MAX_CARDS]:
                result.messages.append(self._card(session, group, ready))
        return result

    def _card(self, session: Session, group: Group,
              prefetched: RadarPrefetch | None = None) -> Message:
        lines = []
        for need_id in group.need_ids:
            need = session.get(Need, need_id)
            if need is None:
                continue
            quote = None
            # a big group keeps one short line a need: quotes would push the programmes out
            # of Telegram's 4,096 characters
            if len(group.need_ids) <= MAX_TAKE_OUT:
                quote = (prefetched.excerpts.get(need_id) if prefetched is not None
                         else excerpt(need.description or "", group))
            if quote:
                lines.append(t("animator.radar_line_excerpt", reference=need.reference,
                               firm=need.firm_name or "—", commune=need.commune_name or "—",
                               excerpt=quote))
            else:
                lines.append(t("animator.radar_line", reference=need.reference,
                               firm=need.firm_name or "—", commune=need.commune_name or "—"))
        programmes = ", ".join(title for _id, title in group.programmes)
        buttons = [(Button(label("animator.radar_btn_propose"), f"rad:ask:{group.key}"),
                    Button(label("animator.radar_btn_dismiss"), f"rad:dis:{group.key}"))]
        if len(group.need_ids) <= MAX_TAKE_OUT:
            # one tap takes a need that does not belong out; the rest stays a group
            outs = [Button(t("animator.radar_btn_take_out", reference=reference).plain(),
                           f"rad:out:{need_id}:{group.key}")
                    for need_id, reference in zip(group.need_ids, group.references, strict=True)]
            buttons += [tuple(outs[k:k + 2]) for k in range(0, len(outs), 2)]
        else:
            buttons.append((Button(label("animator.radar_btn_pick"), f"rad:pick:{group.key}"),))
        return Message(
            t("animator.radar_group", shared=describe(group), group_needs=Text(tuple(
                block for line in lines for block in line.blocks)),
              programmes=programmes or label("animator.radar_no_programme")),
            tuple(buttons))

    def on_button(self, session: Session, user_id: int, value: str, *,
                  now: datetime, prefetched: Any = None) -> Reply:
        """Animator buttons (`rad:ask|dis|undo:<key>`, `rad:out:<need>:<key>`), firm answers."""
        ready = prefetched if isinstance(prefetched, RadarPrefetch) else None
        parts = value.split(":")
        action = parts[1] if len(parts) > 1 else ""
        if action in {"yes", "no"} and len(parts) == 4 and parts[2].isdigit():
            return self._firm_answer(session, user_id, int(parts[2]), parts[3], action,
                                     now=now)
        if action == "undo" and len(parts) == 3:
            return self._undo(session, user_id, parts[2])
        if action == "fix" and len(parts) == 3:
            return self._corrections(session, user_id, parts[2])
        if action == "out" and len(parts) == 4 and parts[2].isdigit():
            taken_out: int | None = int(parts[2])
        elif action in {"dis", "ask", "pick"} and len(parts) == 3:
            taken_out = None
        else:
            return Reply(toast=label("common.stale_button"))
        key = parts[-1]
        for territory in territories_of(session, self.territories, user_id):
            group = next((g for g in self.groups(session, territory, ready) if g.key == key),
                         None)
            if group is None:
                continue
            if taken_out is not None:
                return self._take_out(session, territory.id, group, taken_out, now)
            if action == "pick":
                return self._pick(group)
            if action == "dis":
                self._mark(session, territory.id, group.key, "dismissed", now)
                # its needs one set: the group does not come back when one more need joins
                # it (its key would change), nor do two of them together
                self._set_apart(session, territory.id, {f"aside-{group.key}": group.need_ids},
                                now)
                return Reply([Message(t("animator.radar_dismissed"), _undo_button(group.key))])
            self._mark(session, territory.id, group.key, "proposed", now)
            return self._propose(session, group, now)
        if not territories_of(session, self.territories, user_id):
            return Reply(toast=label("common.animators_only"))
        return Reply([Message(t("animator.radar_gone"))])

    @staticmethod
    def _mark(session: Session, territory_id: str, key: str, status: str,
              now: datetime) -> None:
        table = RadarMark.__table__  # type: ignore[attr-defined]
        session.execute(insert_for(session)(table)
                        .values(territory_id=territory_id, group_key=key, status=status, at=now)
                        .on_conflict_do_update(index_elements=["territory_id", "group_key"],
                                               set_={"status": status, "at": now}))

    @staticmethod
    def _pick(group: Group) -> Reply:
        """« Retirer une demande… » under a big group: its needs as buttons, to take one out."""
        outs = [Button(t("animator.radar_btn_take_out", reference=reference).plain(),
                       f"rad:out:{need_id}:{group.key}")
                for need_id, reference in zip(group.need_ids[:MAX_PICK],
                                              group.references[:MAX_PICK], strict=True)]
        text = (t("animator.radar_pick") if len(group.need_ids) <= MAX_PICK
                else t("animator.radar_pick_first", count=MAX_PICK))
        return Reply([Message(text, tuple(tuple(outs[k:k + 3])
                                          for k in range(0, len(outs), 3)))])

    def _take_out(self, session: Session, territory_id: str, group: Group, need_id: int,
                  now: datetime) -> Reply:
        """One need out of a group: apart from each other member, the rest stays a group."""
        if need_id not in group.need_ids:
            return Reply(toast=label("common.stale_button"))
        # one set of two with each other member, keyed by the group so that « Annuler »
        # finds them again
        self._set_apart(session, territory_id, {
            f"out-{group.key}-{other}": (need_id, other)
            for other in group.need_ids if other != need_id}, now)
        reference = group.references[group.need_ids.index(need_id)]
        left = len(group.need_ids) - 1
        return Reply([Message(t("animator.radar_taken_out", reference=reference)
                              if left >= 2 else
                              t("animator.radar_taken_out_last", reference=reference),
                              _undo_button(group.key))])

    def _corrections(self, session: Session, user_id: int, territory_id: str) -> Reply:
        """« Vos corrections » : the past take-outs and set-asides, each with « Rétablir »."""
        if territory_id not in {t.id for t in territories_of(session, self.territories,
                                                              user_id)}:
            return Reply(toast=label("common.stale_button"))
        found = corrections(session, territory_id)
        if not found:
            return Reply([Message(t("animator.radar_corrections_none"))])
        shown = found[:MAX_CORRECTIONS]
        ids = {need_id for c in shown for need_id in c.need_ids}
        references = {need_id: reference for need_id, reference in session.exec(
            select(Need.id, Need.reference).where(col(Need.id).in_(ids)))}
        result = Reply([Message(t("animator.radar_corrections_title", count=len(found)))])
        for correction in shown:
            refs = [references.get(i, "—") for i in correction.need_ids]
            day = french_date(correction.at.astimezone(_PARIS).date())
            if correction.kind == "out":
                text = t("animator.radar_correction_out", reference=refs[0],
                         others=", ".join(refs[1:]), day=day)
            else:
                text = t(f"animator.radar_correction_{correction.kind}",
                         references=", ".join(refs), day=day)
            result.messages.append(Message(text, ((Button(label("animator.radar_btn_lift"),
                                                          f"rad:undo:{correction.key}"),),)))
        if len(found) > len(shown):
            result.messages.append(Message(t("animator.radar_corrections_more",
                                             count=len(found) - len(shown))))
        return result

    def _undo(self, session: Session, user_id: int, key: str) -> Reply:
        """« Annuler » or « Rétablir »: a take-out's or set-aside's separations and mark go."""
        territories = [t.id for t in territories_of(session, self.territories, user_id)]
        if not territories:
            return Reply(toast=label("common.animators_only"))
        removed = session.execute(delete(RadarApart).where(
            col(RadarApart.territory_id).in_(territories),
            or_(RadarApart.set_key == f"aside-{key}",
                # a pair kept from before take-outs were keyed by their group
                RadarApart.set_key == f"pair-{key}",
                col(RadarApart.set_key).startswith(f"out-{key}-", autoescape=True))))
        session.execute(delete(RadarMark).where(
            col(RadarMark.territory_id).in_(territories), RadarMark.group_key == key,
            RadarMark.status == "dismissed"))
        if not removed.rowcount:  # type: ignore[attr-defined]
            return Reply(toast=label("common.stale_button"))
        return Reply([Message(t("animator.radar_undone"))])

    @staticmethod
    def _set_apart(session: Session, territory_id: str, sets: dict[str, tuple[int, ...]],
                   now: datetime) -> None:
        """Record sets of needs (key -> need ids) of which no group may hold two (idempotent)."""
        rows = [{"territory_id": territory_id, "set_key": key, "need_id": need_id, "at": now}
                for key, members in sets.items() for need_id in set(members)]
        if not rows:
            return
        table = RadarApart.__table__  # type: ignore[attr-defined]
        insert = insert_for(session)
        # a few hundred rows a statement: a very big group stays under SQLite's bound on
        # parameters
        for start in range(0, len(rows), 500):
            session.execute(insert(table).values(rows[start:start + 500])
                            .on_conflict_do_nothing(index_elements=["set_key", "need_id"]))

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
