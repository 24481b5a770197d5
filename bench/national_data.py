"""A national Relais database for benchmarks: 181 territories, three years of needs.

181 of the 183 territories of the 2023 list keep a member EPCI the communes table knows
(EPCI merged since and the Grand Paris EPT are left out, as the bot refuses them at load).

The territories and their intercommunalités come from the programme's list
(`territoires-industrie-2023.csv` in the shared data folder: ``$RELAIS_SHARED/data`` or
``../shared/data`` next to the repository; the file is read, never copied here). Each
territory gets 15 partners and one animator; needs are spread over the three years before
`ANCHOR`, with a skewed share per territory (the busiest holds ~5 % of them, ~2,000 open
needs at 500k), realistic themes, a lifecycle replayed up to `ANCHOR` (events, routings
and their acknowledgements, messages, satisfaction, meetings and reminders) and
knowledge-base questions.

Rows are written in bulk (sqlite3 ``executemany`` with the file's journal off; asyncpg
``COPY`` on PostgreSQL), never as ORM objects. The schema is made by the migrations, as in
production. A SQLite file is cached under the temporary folder, keyed by size and
`SCHEMA_VERSION` plus the migrations' head, so that a rerun starts at once.

    from bench.national_data import sqlite_database, pg_database, national_territories
    path = sqlite_database(100_000)            # cached file; URL: sqlite+aiosqlite:///<path>
    async with pg_database(100_000) as url: ...  # throwaway PostgreSQL database
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
import os
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import yaml  # noqa: E402
from sqlmodel import SQLModel  # noqa: E402

import storage.models  # noqa: E402, F401  (registers the tables)
from knowledge.geography import default_geography  # noqa: E402
from knowledge.taxonomy import PARTNER_KINDS  # noqa: E402
from knowledge.territories import Territory, TerritoryDirectory  # noqa: E402

__all__ = [
    "ANCHOR",
    "SCHEMA_VERSION",
    "NationalShape",
    "csv_path",
    "generate",
    "national_territories",
    "pg_database",
    "sqlite_database",
    "write_territory_files",
]

# Bump when the generated shape changes: cached files are keyed by it.
SCHEMA_VERSION = 3  # 3: territories with no EPCI the communes table knows left out
# "Now" for the generated history (a Monday morning, Paris time 09:00): benches pass it as
# `now`, so the figures do not drift with the wall clock and the cache stays valid.
ANCHOR = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
YEARS = 3
SEED = 20261207
# Share of territory i (busiest first) ∝ 1 / (i + 1) ** ZIPF: the busiest holds ~5.5 %.
ZIPF = 0.6
ANIMATOR_USER_BASE = 910_000_000
FIRM_USER_BASE = 5_000_000_000
CHUNK = 20_000

THEME_WEIGHTS: dict[str, int] = {
    "recrutement": 25, "competences": 15, "financement": 12, "foncier": 10,
    "innovation": 10, "transition": 8, "difficulte": 5, "export": 4, "mobilite": 4,
    "autre": 4, "mutualisation": 3,
}
# (kind, themes, ack_days): the 15 partners of every territory.
PARTNER_PLAN: tuple[tuple[str, tuple[str, ...], int], ...] = (
    ("france_travail", ("recrutement", "competences"), 2),
    ("opco", ("competences",), 3),
    ("cci", ("export", "innovation", "financement", "difficulte"), 2),
    ("cma", ("competences", "difficulte", "financement"), 2),
    ("region", ("financement", "innovation", "foncier"), 5),
    ("bpifrance", ("financement", "innovation", "export"), 3),
    ("ademe", ("transition",), 5),
    ("epf", ("foncier",), 5),
    ("epci_dev_eco", ("foncier", "mutualisation", "autre", "mobilite"), 2),
    ("transitions_pro", ("competences",), 3),
    ("dreets", ("difficulte", "recrutement"), 3),
    ("business_france", ("export",), 3),
    ("banque_des_territoires", ("foncier", "transition"), 5),
    ("agence_dev_eco", ("innovation", "mutualisation", "autre"), 2),
    ("action_logement", ("mobilite",), 3),
)
PARTNERS_PER_TERRITORY = len(PARTNER_PLAN)
URGENCIES = (("week", 15), ("month", 40), ("quarter", 30), ("none", 15))
KB_OUTCOMES = (("answered", 55), ("uncertain", 15), ("out_of_scope", 12), ("rejected", 8),
               ("forwarded", 10))
QUESTIONS = (
    "Comment embaucher un apprenti ?", "Quelles aides pour recruter un alternant ?",
    "Comment financer la formation de mes salariés ?", "Qui contacter pour un terrain industriel ?",
    "Existe-t-il une aide à l'export ?", "Comment obtenir un prêt de Bpifrance ?",
    "Quelles aides pour réduire ma facture d'énergie ?", "Où trouver un local à louer ?",
    "Comment mutualiser un poste avec une autre entreprise ?", "Aide pour un diagnostic énergie",
    "Comment recruter des soudeurs ?", "Quel est mon OPCO ?", "Comment loger mes salariés ?",
    "Que faire en cas de difficultés de trésorerie ?", "Aide à l'investissement productif",
    "Comment devenir entreprise d'accueil de stagiaires ?", "Crédit d'impôt recherche",
    "Où former des techniciens de maintenance ?", "Comment obtenir le label French Fab ?",
    "Médiation du crédit : comment saisir ?", "Quelles aides pour un robot ?",
    "Comment trouver des sous-traitants ?", "Aide à la décarbonation de l'industrie",
    "Qui finance l'achat d'une machine ?", "Comment répondre à un appel d'offres public ?",
)
MESSAGE_TEXTS = (
    "Bonjour, je vous appelle demain matin pour en parler.",
    "Bonjour, France Travail va vous contacter cette semaine.",
    "Merci pour votre demande, pouvez-vous préciser le nombre de postes ?",
    "Bonjour, je vous propose un rendez-vous la semaine prochaine.",
)
DESCRIPTIONS = {
    "recrutement": "Nous cherchons {n} opérateurs de production et un technicien de maintenance.",
    "competences": "Former {n} salariés à la conduite de lignes automatisées.",
    "financement": "Financer une nouvelle presse, investissement de {n}00 k€.",
    "foncier": "Trouver un terrain de {n} hectares pour une extension.",
    "innovation": "Moderniser l'atelier d'usinage, {n} postes à robotiser.",
    "transition": "Réduire la consommation de gaz du four, {n} MWh par an.",
    "difficulte": "Baisse de commandes, {n} mois de trésorerie.",
    "export": "Premiers clients en Allemagne, {n} salons visés.",
    "mobilite": "Loger {n} alternants près du site.",
    "autre": "Question sur l'accompagnement proposé ({n}).",
    "mutualisation": "Partager un poste de responsable sécurité avec {n} entreprises voisines.",
}


# --- Territories ------------------------------------------------------------------------------


def csv_path() -> Path:
    """The programme's list of territories and EPCI, in the shared data folder."""
    shared = os.environ.get("RELAIS_SHARED")
    base = Path(shared) if shared else REPO.parent / "shared"
    path = base / "data" / "territoires-industrie-2023.csv"
    if not path.is_file():
        fallback = Path("/work/shared/data/territoires-industrie-2023.csv")
        if fallback.is_file():
            return fallback
        raise FileNotFoundError(f"{path}: set RELAIS_SHARED to the shared folder")
    return path


def _territory_rows() -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(id, name, [(siren, epci name)]) per territory, in the file's order."""
    grouped: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    seen: set[str] = set()
    geography = default_geography()
    with csv_path().open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            tid = row["id_ti"].strip().lower()
            _name, members = grouped.setdefault(tid, (row["lib_ti"].strip(), []))
            siren = row["siren_groupement"].strip()
            # EPCI merged since 2023, and the Grand Paris EPT (its communes belong to the
            # Métropole), are unknown to the communes table: the bot refuses them at load
            if geography.epci_name(siren) is None:
                continue
            if siren not in seen:  # an EPCI belongs to one territory in the bot
                seen.add(siren)
                members.append((siren, row["lib_groupement"].strip()))
    return [(tid, name, members) for tid, (name, members) in grouped.items() if members]


def _territory_dicts() -> list[dict[str, Any]]:
    """Each territory as its YAML file would say it (no zones: the whole territory)."""
    result = []
    for index, (tid, name, members) in enumerate(_territory_rows()):
        partners = [{
            "id": f"{tid}-{kind.replace('_', '-')}",
            "name": f"{PARTNER_KINDS[kind].split(' (')[0]} – {name}"[:120],
            "kind": kind,
            "email": f"{kind.replace('_', '-')}.{tid}@example.org",
            "themes": list(themes),
            "ack_days": ack_days,
        } for kind, themes, ack_days in PARTNER_PLAN]
        result.append({
            "id": tid,
            "name": name,
            "response_days": 5,
            "epci": [{"siren": siren, "name": epci} for siren, epci in members],
            "animators": [{"name": f"Animateur {tid.upper()}",
                           "email": f"animation.{tid}@example.org",
                           "telegram_user_id": ANIMATOR_USER_BASE + index}],
            "partners": partners,
        })
    return result


def national_territories() -> TerritoryDirectory:
    """The territories in memory (181), validated like the files."""
    return TerritoryDirectory(tuple(Territory.model_validate(d) for d in _territory_dicts()))


def write_territory_files(directory: Path) -> Path:
    """Write one YAML file per territory into `directory` (created); return it."""
    directory.mkdir(parents=True, exist_ok=True)
    for data in _territory_dicts():
        path = directory / f"{data['id']}.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                        encoding="utf-8")
    return directory


# --- Rows -------------------------------------------------------------------------------------


@dataclass
class NationalShape:
    """What was generated: counts per table, and the territories by number of needs."""

    size: int
    counts: dict[str, int] = field(default_factory=dict)
    # Territory ids, busiest first, with their needs and open needs.
    needs_by_territory: dict[str, int] = field(default_factory=dict)
    open_by_territory: dict[str, int] = field(default_factory=dict)
    firm_users: int = 0

    @property
    def busiest(self) -> str:
        """The territory with the most needs."""
        return max(self.needs_by_territory, key=lambda k: self.needs_by_territory[k])

    def to_json(self) -> str:
        """Serialised next to a cached file."""
        return json.dumps({"size": self.size, "counts": self.counts,
                           "needs_by_territory": self.needs_by_territory,
                           "open_by_territory": self.open_by_territory,
                           "firm_users": self.firm_users})

    @classmethod
    def from_json(cls, text: str) -> NationalShape:
        """Read back what `to_json` wrote."""
        data = json.loads(text)
        return cls(size=data["size"], counts=data["counts"],
                   needs_by_territory=data["needs_by_territory"],
                   open_by_territory=data["open_by_territory"], firm_users=data["firm_users"])


Row = dict[str, Any]
Sink = Callable[[str, list[Row]], None]
OPEN = ("awaiting_info", "submitted", "routed", "acknowledged", "in_progress")


def _pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([k for k, _ in weighted], [w for _, w in weighted])[0]


class _Buffers:
    """Rows per table, flushed to the sink in chunks (tables written parents first)."""

    ORDER = ("need", "need_event", "need_routing", "need_message", "satisfaction", "meeting",
             "meeting_attendee", "reminder", "kb_query", "consent", "need_sequence")

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.rows: dict[str, list[Row]] = {name: [] for name in self.ORDER}
        self.counts: dict[str, int] = dict.fromkeys(self.ORDER, 0)

    def add(self, table: str, row: Row) -> None:
        rows = self.rows[table]
        rows.append(row)
        if table == "need" and len(rows) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        for name in self.ORDER:
            rows = self.rows[name]
            if rows:
                self.sink(name, rows)
                self.counts[name] += len(rows)
                self.rows[name] = []


def generate(size: int, sink: Sink, *, seed: int = SEED) -> NationalShape:
    """Generate `size` needs and everything around them, handing rows to `sink` in chunks."""
    rng = random.Random(seed)
    territories = _territory_dicts()
    count = len(territories)
    order = list(range(count))
    rng.shuffle(order)  # which territories are the busy ones
    weights = [0.0] * count
    for rank, index in enumerate(order):
        weights[index] = 1 / (rank + 1) ** ZIPF
    communes = _communes(territories)
    themes = tuple(THEME_WEIGHTS.items())
    by_theme = [{theme: [p for p in t["partners"] if theme in p["themes"]]
                 for theme in THEME_WEIGHTS} for t in territories]
    shape = NationalShape(size=size)
    buffers = _Buffers(sink)
    span = timedelta(days=365 * YEARS).total_seconds()
    firm_count = max(size // 3, 1)
    shape.firm_users = firm_count
    sequence: dict[int, int] = {}
    meeting_id = attendee_id = reminder_id = event_id = routing_id = message_id = 0
    satisfaction_id = 0
    # Creation times, oldest first: more needs lately (the programme grows).
    ages = sorted((span * rng.random() ** 1.3 for _ in range(size)), reverse=True)
    territory_of = rng.choices(range(count), weights, k=size)
    for index in range(size):
        need_id = index + 1
        ti = territory_of[index]
        territory = territories[ti]
        tid = territory["id"]
        animator = territory["animators"][0]
        created = ANCHOR - timedelta(seconds=ages[index] + 60)
        theme = _pick(rng, themes)
        siren, epci_name = rng.choice([(e["siren"], e["name"]) for e in territory["epci"]])
        commune = rng.choice(communes.get(siren) or [(None, None)])
        channel = "telegram" if rng.random() < 0.7 else "email"
        firm = rng.randrange(firm_count)
        year = created.year
        sequence[year] = sequence.get(year, 0) + 1
        # The planned lifecycle, replayed up to ANCHOR: what lies after it has not happened.
        steps = _lifecycle(rng, created, partner_ids=[p["id"] for p in by_theme[ti][theme]])
        happened = [s for s in steps if s[1] < ANCHOR]
        status = happened[-1][0] if happened else "submitted"
        erased = status not in OPEN and rng.random() < 0.02
        buffers.add("need", {
            "id": need_id, "reference": f"TI-{year}-{sequence[year]:04d}", "status": status,
            "channel": channel, "theme": theme, "urgency": _pick(rng, URGENCIES),
            "firm_name": None if erased else f"Entreprise {firm:06d}",
            "siret": None if erased else f"{firm % 10**9:09d}00017",
            "description": None if erased else DESCRIPTIONS[theme].format(n=rng.randint(2, 9)),
            "contact_method": "telegram" if channel == "telegram" else "email",
            "contact_value": None if channel == "telegram" or erased
            else f"contact{firm}@firm.example",
            "telegram_chat_id": FIRM_USER_BASE + firm if channel == "telegram" else None,
            "telegram_user_id": FIRM_USER_BASE + firm if channel == "telegram" else None,
            "commune_insee": commune[0], "commune_name": commune[1], "reply_token": None,
            "missing": None, "firm": None, "epci_siren": siren, "epci_name": epci_name,
            "territory_id": tid, "consent_at": created, "stale_asked_at": None,
            "anonymized_at": happened[-1][1] if erased else None,
            "created_at": created,
            "updated_at": happened[-1][1] if happened else created,
        })
        shape.needs_by_territory[tid] = shape.needs_by_territory.get(tid, 0) + 1
        if status in OPEN:
            shape.open_by_territory[tid] = shape.open_by_territory.get(tid, 0) + 1
        previous: str | None = None
        routed_at: datetime | None = None
        acked_at: datetime | None = None
        in_progress_at: datetime | None = None
        closed: tuple[str, datetime] | None = None
        for to, at, actor in happened:
            event_id += 1
            buffers.add("need_event", {
                "id": event_id, "need_id": need_id, "from_status": previous, "to_status": to,
                "actor": actor,
                "actor_ref": f"telegram:{animator['telegram_user_id']}"
                if actor == "animator" else None, "note": None, "at": at,
                "territory_id": tid})
            previous = to
            if to == "routed":
                routed_at = at
            elif to == "acknowledged":
                acked_at = at
            elif to == "in_progress":
                in_progress_at = at
            elif to not in OPEN:
                closed = (to, at)
        if routed_at is not None:
            chosen = by_theme[ti][theme][:]
            rng.shuffle(chosen)
            for rank, partner in enumerate(chosen[:rng.randint(1, 3)]):
                routing_id += 1
                ack = acked_at if rank == 0 else (
                    routed_at + timedelta(hours=rng.uniform(2, 200))
                    if rng.random() < 0.7 else None)
                if ack is not None and ack >= ANCHOR:
                    ack = None
                removed = rng.random() < 0.03
                late = ack is None and not removed and ANCHOR - routed_at > timedelta(days=4)
                buffers.add("need_routing", {
                    "id": routing_id, "need_id": need_id, "partner_id": partner["id"],
                    "partner_kind": partner["kind"], "partner_name": partner["name"],
                    "partner_email": partner["email"], "level": "territoire",
                    "reason": "Couvre tout le territoire pour ce thème.",
                    "status": "removed" if removed else
                    ("acknowledged" if ack is not None else "routed"),
                    "ack_days": partner["ack_days"], "routed_at": routed_at,
                    "acknowledged_at": ack,
                    "reminded_at": routed_at + timedelta(days=3) if late else None,
                    "escalated_at": routed_at + timedelta(days=4) if late else None,
                    "relay_direct": None, "relay_direct_at": None, "territory_id": tid})
        if rng.random() < 0.4:
            at = created + timedelta(hours=rng.uniform(1, 96))
            if at < ANCHOR:
                message_id += 1
                buffers.add("need_message", {
                    "id": message_id, "need_id": need_id, "inbound_id": None,
                    "author_kind": "animator", "author": animator["name"],
                    "text": rng.choice(MESSAGE_TEXTS), "at": at, "channel": "telegram",
                    "to_kind": "firm", "sender_user_id": animator["telegram_user_id"],
                    "attachment": None, "message_id": None, "verified": None,
                    "territory_id": tid})
        if closed is not None and closed[0] == "closed_helped":
            asked = closed[1] + timedelta(hours=1)
            if asked < ANCHOR:
                satisfaction_id += 1
                answered = asked + timedelta(hours=rng.uniform(1, 72))
                answers = rng.random() < 0.5 and answered < ANCHOR
                buffers.add("satisfaction", {
                    "id": satisfaction_id, "need_id": need_id, "territory_id": tid,
                    "score": rng.choices((1, 2, 3, 4, 5), (5, 5, 15, 35, 40))[0]
                    if answers else None,
                    "comment": "Très réactifs, merci." if answers and rng.random() < 0.2
                    else None,
                    "asked_at": asked, "answered_at": answered if answers else None})
        if in_progress_at is not None and rng.random() < 0.12:
            meeting_id += 1
            day = (in_progress_at + timedelta(days=rng.randint(2, 15))).replace(
                hour=rng.randint(7, 15), minute=0, second=0, microsecond=0)
            mstatus = _pick(rng, (("confirmed", 70), ("proposed", 10), ("cancelled", 10),
                                  ("declined", 5), ("other_slot", 5)))
            buffers.add("meeting", {
                "id": meeting_id, "uid": f"meeting-{meeting_id}@relais.example.org",
                "need_id": need_id, "territory_id": tid, "start_at": day,
                "end_at": day + timedelta(hours=1), "place": "Mairie", "video_url": None,
                "status": mstatus, "sequence": 0, "organizer_name": animator["name"],
                "organizer_email": animator["email"],
                "organizer_telegram_id": animator["telegram_user_id"],
                "firm_invited": channel == "telegram",
                "firm_chat_id": FIRM_USER_BASE + firm if channel == "telegram" else None,
                "firm_note": None, "created_at": in_progress_at, "updated_at": in_progress_at})
            for partner in by_theme[ti][theme][:rng.randint(1, 2)]:
                attendee_id += 1
                buffers.add("meeting_attendee", {
                    "id": attendee_id, "meeting_id": meeting_id, "kind": "partner",
                    "partner_id": partner["id"], "name": partner["name"],
                    "email": partner["email"]})
            if mstatus == "confirmed":
                for minutes in (1440, 120):
                    reminder_id += 1
                    due = day - timedelta(minutes=minutes)
                    buffers.add("reminder", {
                        "id": reminder_id, "meeting_id": meeting_id, "sequence": 0,
                        "offset_minutes": minutes, "due_at": due,
                        "status": "sent" if due < ANCHOR else "pending",
                        "done_at": due if due < ANCHOR else None, "note": None})
    kb_count = size * 3 // 2
    kb_ages = sorted((span * rng.random() ** 1.3 for _ in range(kb_count)), reverse=True)
    kb_territory = rng.choices(range(count), weights, k=kb_count)
    for index in range(kb_count):
        text = rng.choice(QUESTIONS)
        if rng.random() < 0.2:  # the same question typed differently
            text = text.lower().rstrip(" ?") + " ?"
        buffers.add("kb_query", {
            "id": index + 1, "channel": "telegram", "text": text,
            "best_card_id": f"card-{rng.randrange(60)}", "score": round(rng.random(), 3),
            "outcome": _pick(rng, KB_OUTCOMES), "chosen_card_id": None,
            "territory_id": None if rng.random() < 0.1 else territories[kb_territory[index]]["id"],
            "chat_id": FIRM_USER_BASE + rng.randrange(firm_count),
            "asked_at": ANCHOR - timedelta(seconds=kb_ages[index] + 30)})
        if len(buffers.rows["kb_query"]) >= CHUNK:
            buffers.flush()
    for firm in range(firm_count):
        buffers.add("consent", {"user_id": FIRM_USER_BASE + firm, "channel": "telegram",
                                "given_at": ANCHOR - timedelta(days=YEARS * 365)})
        if len(buffers.rows["consent"]) >= CHUNK:
            buffers.flush()
    for year, last in sorted(sequence.items()):
        buffers.add("need_sequence", {"year": year, "last": last})
    buffers.flush()
    shape.counts = buffers.counts
    shape.needs_by_territory = dict(sorted(shape.needs_by_territory.items(),
                                           key=lambda kv: -kv[1]))
    return shape


def _lifecycle(rng: random.Random, created: datetime,
               partner_ids: list[str]) -> list[tuple[str, datetime, str]]:
    """The need's planned moves (status, time, actor); the caller keeps those before ANCHOR."""
    steps = [("submitted", created, "firm")]
    at = created + timedelta(seconds=rng.uniform(5, 120))
    if not partner_ids:
        # No partner for the theme: the animator takes it.
        at += timedelta(hours=rng.uniform(1, 72))
        steps.append(("in_progress", at, "animator"))
    else:
        steps.append(("routed", at, "system"))
        if rng.random() < 0.04:  # cancelled by the firm early
            steps.append(("cancelled", at + timedelta(hours=rng.uniform(1, 48)), "firm"))
            return steps
        at += timedelta(hours=rng.uniform(2, 96))
        steps.append(("acknowledged", at, f"partner:{rng.choice(partner_ids)}"))
        at += timedelta(days=rng.uniform(0.5, 10))
        steps.append(("in_progress", at, "animator"))
    # Most needs close within weeks; a few stay open for a year and more (stale needs).
    days = rng.uniform(400, 900) if rng.random() < 0.04 else rng.expovariate(1 / 30)
    at += timedelta(days=days)
    closing = _pick(rng, (("closed_helped", 60), ("closed_not_helped", 25), ("cancelled", 15)))
    steps.append((closing, at, "animator"))
    return steps


def _communes(territories: list[dict[str, Any]]) -> dict[str, list[tuple[str, str]]]:
    """Communes (INSEE, name) of every EPCI, from the shipped geography when it knows them."""
    try:
        from knowledge.geography import default_geography

        geography = default_geography()
    except Exception:  # the bench works without communes
        return {}
    result: dict[str, list[tuple[str, str]]] = {}
    for territory in territories:
        for epci in territory["epci"]:
            found = geography.communes_of_epci(epci["siren"])
            if found:
                result[epci["siren"]] = [(c.insee, c.name) for c in found]
    return result


# --- Writers ----------------------------------------------------------------------------------


def _columns(table: str) -> list[str]:
    return [c.name for c in SQLModel.metadata.tables[table].columns]


def _json_columns(table: str) -> set[str]:
    from sqlalchemy import JSON

    return {c.name for c in SQLModel.metadata.tables[table].columns
            if isinstance(c.type, JSON)}


def _sqlite_value(value: Any) -> Any:
    """What SQLAlchemy's SQLite dialect stores for a value (naive UTC text for datetimes)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, bool):
        return int(value)
    return value


def _migrate(url: str) -> None:
    from storage.migrate import upgrade

    upgrade(url)


def _head() -> str:
    from storage.migrate import head

    return head()


def _cache_dir() -> Path:
    return Path(os.environ.get("RELAIS_BENCH_CACHE", Path(tempfile.gettempdir())
                               / "relais-national"))


def sqlite_database(size: int, *, fresh: bool = False,
                    log: Callable[[str], None] | None = print) -> tuple[Path, NationalShape]:
    """A SQLite file of `size` needs (cached by size and schema), and its shape."""
    cache = _cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    key = f"national-{size}-v{SCHEMA_VERSION}-{_head()}"
    path = cache / f"{key}.sqlite3"
    meta = cache / f"{key}.json"
    if path.is_file() and meta.is_file() and not fresh:
        return path, NationalShape.from_json(meta.read_text(encoding="utf-8"))
    partial = cache / f"{key}.partial.sqlite3"
    partial.unlink(missing_ok=True)
    started = time.perf_counter()
    _migrate(f"sqlite:///{partial}")
    connection = sqlite3.connect(partial)
    connection.execute("PRAGMA journal_mode=OFF")
    connection.execute("PRAGMA synchronous=OFF")
    statements: dict[str, tuple[str, list[str], set[str]]] = {}

    def sink(table: str, rows: list[Row]) -> None:
        if table not in statements:
            columns = _columns(table)
            sql = (f"INSERT INTO {table} ({', '.join(columns)}) "
                   f"VALUES ({', '.join('?' * len(columns))})")
            statements[table] = (sql, columns, _json_columns(table))
        sql, columns, json_cols = statements[table]
        connection.executemany(sql, (
            tuple(json.dumps(row.get(c)) if c in json_cols and row.get(c) is not None
                  else _sqlite_value(row.get(c)) for c in columns) for row in rows))

    connection.execute("BEGIN")
    shape = generate(size, sink)
    connection.commit()
    connection.execute("ANALYZE")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.close()
    partial.rename(path)
    meta.write_text(shape.to_json(), encoding="utf-8")
    if log is not None:
        log(f"generated {size} needs (SQLite) in {time.perf_counter() - started:.0f} s: "
            f"{path}")
    return path, shape


@asynccontextmanager
async def pg_database(size: int, *,
                      log: Callable[[str], None] | None = print
                      ) -> AsyncIterator[tuple[str, NationalShape]]:
    """A throwaway PostgreSQL database of `size` needs (COPY), dropped afterwards."""
    import asyncpg

    from testing.pg import fresh_database

    async with fresh_database() as url:
        started = time.perf_counter()
        await asyncio.to_thread(_migrate, url)
        dsn = url.replace("postgresql+asyncpg://", "postgresql://")
        connection = await asyncpg.connect(dsn)
        try:
            # Generation is CPU work: run it in a thread, copying chunks as they come.
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue[tuple[str, list[Row]] | None] = asyncio.Queue(maxsize=8)

            def threaded_sink(table: str, rows: list[Row]) -> None:
                asyncio.run_coroutine_threadsafe(queue.put((table, rows)), loop).result()

            def produce() -> NationalShape:
                try:
                    return generate(size, threaded_sink)
                finally:
                    asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()

            producer = loop.run_in_executor(None, produce)
            columns_of: dict[str, tuple[list[str], set[str]]] = {}
            while (item := await queue.get()) is not None:
                table, rows = item
                if table not in columns_of:
                    columns_of[table] = (_columns(table), _json_columns(table))
                columns, json_cols = columns_of[table]
                records = [tuple(json.dumps(row.get(c)) if c in json_cols
                                 and row.get(c) is not None else row.get(c)
                                 for c in columns) for row in rows]
                await connection.copy_records_to_table(table, records=records,
                                                       columns=columns)
            shape = await producer
            for table in ("need", "need_event", "need_routing", "need_message",
                          "satisfaction", "meeting", "meeting_attendee", "reminder",
                          "kb_query"):
                await connection.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)")
            await connection.execute("ANALYZE")
        finally:
            await connection.close()
        if log is not None:
            log(f"generated {size} needs (PostgreSQL) in {time.perf_counter() - started:.0f} s")
        yield url, shape


def _main() -> None:
    """`python bench/national_data.py 10000 [--pg]`: generate (and time) one database."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("size", type=int)
    parser.add_argument("--pg", action="store_true", help="PostgreSQL (dropped at the end)")
    parser.add_argument("--fresh", action="store_true", help="ignore the SQLite cache")
    args = parser.parse_args()
    if args.pg:
        async def run() -> None:
            async with pg_database(args.size) as (_url, shape):
                print(json.dumps(shape.counts), shape.busiest,
                      shape.open_by_territory.get(shape.busiest))
        asyncio.run(run())
        return
    path, shape = sqlite_database(args.size, fresh=args.fresh)
    print(path, json.dumps(shape.counts), shape.busiest,
          shape.needs_by_territory[shape.busiest], shape.open_by_territory.get(shape.busiest))


def iter_sizes(text: str) -> Iterator[int]:
    """`10000,100k,0.5m` → sizes."""
    for part in text.split(","):
        part = part.strip().lower()
        factor = 1
        if part.endswith("k"):
            factor, part = 1000, part[:-1]
        elif part.endswith("m"):
            factor, part = 1_000_000, part[:-1]
        yield math.floor(float(part) * factor)


if __name__ == "__main__":
    _main()
