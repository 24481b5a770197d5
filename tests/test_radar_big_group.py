"""A group too big for a button per need: « Retirer une demande… » lists its needs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import Session

from bot.config import DEFAULT_TERRITORIES_DIR
from bot.services.mutualisation import MAX_TAKE_OUT, RadarService
from knowledge.geography import default_geography
from knowledge.territories import load_territories
from storage.db import Database
from storage.models import Need

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
TERRITORY = "ti-2703"
VOICES = ("Nous recrutons des soudeurs TIG", "Cherche soudeur qualifié pour l'atelier",
          "Recrute un chaudronnier soudeur", "On cherche des soudeurs, même débutants")


def seed(session: Session, count: int) -> list[int]:
    """Open needs of `count` firms that all look for welders."""
    ids = []
    for i in range(count):
        need = Need(reference=f"TI-2026-{i + 1:04d}", theme="recrutement", urgency="month",
                    firm_name=f"Firme {i}", description=VOICES[i % len(VOICES)],
                    contact_method="telegram", telegram_chat_id=30_000 + i,
                    telegram_user_id=30_000 + i, commune_insee="71342",
                    commune_name="Paray-le-Monial", territory_id=TERRITORY)
        session.add(need)
        session.flush()
        ids.append(need.id or 0)
    return ids


async def test_a_big_group_lists_its_needs_to_take_one_out(tmp_path: Path) -> None:
    territories = load_territories(DEFAULT_TERRITORIES_DIR, geography=default_geography())
    territory = territories.get(TERRITORY)
    assert territory is not None
    animator = next(a.telegram_user_id for a in territory.animators
                    if a.telegram_user_id is not None)
    service = RadarService(territories, kb=None)
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/radar.db")
    try:
        await db.create_all()
        size = MAX_TAKE_OUT + 3
        ids = await db.run(lambda s: seed(s, size))
        reply = await db.run(lambda s: service.command(s, animator))
        card = reply.messages[1]
        labels = [b.label for row in card.buttons for b in row]
        # no button per need: one that opens the list
        assert labels == ["Proposer aux entreprises", "Écarter", "Retirer une demande…"]
        # one short line a need, no quote: the card stays within Telegram's 4,096 characters
        assert "« " not in card.text.plain()
        pick = card.buttons[-1][0].data
        listed = await db.run(lambda s: service.on_button(s, animator, pick, now=NOW))
        message = listed.messages[0]
        assert message.text.plain() == "Quelle demande retirer du groupe ?"
        outs = [b for row in message.buttons for b in row]
        assert [b.label for b in outs] == [f"Retirer TI-2026-{i + 1:04d}" for i in range(size)]
        assert all(len(row) <= 3 for row in message.buttons)
        assert all(len(b.data.encode()) <= 64 for b in outs)
        taken = await db.run(lambda s: service.on_button(s, animator, outs[-1].data, now=NOW))
        assert taken.messages[0].text.plain().startswith(f"TI-2026-{size:04d} est retirée")
        groups = await db.run(lambda s: service.groups(s, territory))
        assert [g.need_ids for g in groups] == [tuple(ids[:-1])]
        # the old list names a group that changed: its buttons are stale
        again = await db.run(lambda s: service.on_button(s, animator, outs[0].data, now=NOW))
        assert again.messages[0].text.plain().startswith("Ce groupe a changé depuis")
        # a firm cannot open the list
        stranger = await db.run(lambda s: service.on_button(s, 30_000, pick, now=NOW))
        assert stranger.toast is not None and not stranger.messages
    finally:
        await db.dispose()
