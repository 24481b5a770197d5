"""The animator's separations on PostgreSQL: written once however often, read by the radar."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import Session, func, select

from bot.config import DEFAULT_TERRITORIES_DIR
from bot.services.mutualisation import RadarService, apart_sets, corrections
from knowledge.geography import default_geography
from knowledge.territories import load_territories
from storage.db import Database
from storage.models import Need, RadarApart
from testing.pg import fresh_database

# Real PostgreSQL (127.0.0.1:5432): `-m "not pg"` leaves these out.
pytestmark = pytest.mark.pg

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
TERRITORY = "ti-2703"
TEXTS = ("Nous recrutons deux soudeurs TIG", "Cherche soudeur qualifié pour l'atelier",
         "Recrute un chaudronnier soudeur", "On cherche des soudeurs, même débutants")


def seed(session: Session) -> list[int]:
    """Open needs of four firms that the radar groups together."""
    ids = []
    for i, text in enumerate(TEXTS):
        need = Need(reference=f"TI-2026-{i + 1:04d}", theme="recrutement", urgency="month",
                    firm_name=f"Firme {i}", description=text, contact_method="telegram",
                    telegram_chat_id=20_000 + i, telegram_user_id=20_000 + i,
                    commune_insee="71342", commune_name="Paray-le-Monial",
                    territory_id=TERRITORY)
        session.add(need)
        session.flush()
        ids.append(need.id or 0)
    return ids


async def test_separations_are_stored_once_and_split_the_group() -> None:
    territories = load_territories(DEFAULT_TERRITORIES_DIR, geography=default_geography())
    service = RadarService(territories, kb=None)
    territory = territories.get(TERRITORY)
    assert territory is not None
    async with fresh_database() as url:
        db = Database(url)
        try:
            await db.create_all()
            first, second, third, fourth = await db.run(seed)
            groups = await db.run(lambda s: service.groups(s, territory))
            assert [g.need_ids for g in groups] == [(first, second, third, fourth)]

            def separate(session: Session) -> None:
                # the fourth taken out, then the three others set aside; twice: same rows
                RadarService._set_apart(session, TERRITORY, {
                    f"pair-{other}-{fourth}": (other, fourth)
                    for other in (first, second, third)}, NOW)
                RadarService._set_apart(session, TERRITORY,
                                        {"aside-x": (first, second, third)}, NOW)

            await db.run(separate)
            await db.run(separate)
            count = await db.run(lambda s: s.exec(
                select(func.count()).select_from(RadarApart)).one())
            assert count == 3 * 2 + 3  # rows grow with the members, not with the pairs
            sets = await db.run(lambda s: apart_sets(s, TERRITORY))
            assert sorted(sets) == sorted([[first, second, third], [first, fourth],
                                           [second, fourth], [third, fourth]])
            # no group can hold two of the first three, nor the fourth with any of them
            assert await db.run(lambda s: service.groups(s, territory)) == []
            # the corrections view: four, the pairs of an older version liftable by « a-b »
            found = await db.run(lambda s: corrections(s, TERRITORY))
            assert sorted((c.kind, c.key, c.need_ids) for c in found) == [
                ("aside", "x", (first, second, third)),
                *sorted(("pair", f"{other}-{fourth}", (other, fourth))
                        for other in (first, second, third))]

            def close(session: Session) -> None:
                for need_id in (first, second):
                    need = session.get(Need, need_id)
                    assert need is not None
                    need.status = "closed_helped"
                    session.add(need)

            await db.run(close)
            # a correction that no longer bears on two open needs is not listed
            found = await db.run(lambda s: corrections(s, TERRITORY))
            assert [(c.kind, c.need_ids) for c in found] == [("pair", (third, fourth))]
            # « Rétablir » under it lifts the pair: the two needs group again
            animator = next(a.telegram_user_id for a in territory.animators
                            if a.telegram_user_id is not None)
            lifted = await db.run(lambda s: service.on_button(
                s, animator, f"rad:undo:{third}-{fourth}", now=NOW))
            assert lifted.messages[0].text.plain().startswith("C'est annulé")
            assert await db.run(lambda s: corrections(s, TERRITORY)) == []
            groups = await db.run(lambda s: service.groups(s, territory))
            assert [g.need_ids for g in groups] == [(third, fourth)]
        finally:
            await db.dispose()
