"""Benchmark: a firm's relayed message reaching its chef de projet, against the intake step.

Relayed message latency: from the moment a simulated firm sends a message (a Telegram
"reply" to its chef de projet's relayed message: one update, `RelayService.on_reply_to`)
to the moment the Bot API double records the bot's message in the chef de projet's chat.
Baseline, measured in the same run at the same rate: a firm typing an answer to an intake
question (SIRET, name, commune) to the next question in its chat. Both kinds run at
`--rate` messages a second (30 by default) in an open loop (each message leaves at its
time, answered or not), in rounds that alternate the kinds, on SQLite. The machine is
shared and noisy: the ratio is what counts.

The bot is the real python-telegram-bot `Application` with Relais' `UpdatePoller` (through
`build_services` and `running_bot`), polling the local Bot API (`testing.botapi`) over
loopback HTTP; the double, the simulated people and the bot share this process. Times are
`time.perf_counter()` readings: before the simulated user's update is queued, and in the
double's `on_bot_message` hook when the bot's message is recorded.

The load is spread as production spreads it. A temporary territories directory holds the
example territory with `--animators` chefs de projet; each writing firm has one need, in
progress, taken by one of them (written to the database at set-up as "Je prends" leaves
it: the `in_progress` event names the animator), so the relayed messages fan out across
the chefs de projet's chats. The chef de projet writes first ("Écrire à l'entreprise",
through the bot), the firm answers that message. Each firm sends fewer messages in the
whole run than the per-firm flood limit allows in a minute (RELAIS_RELAY_PER_MINUTE), so
none is held. Relais spaces relayed messages to one chat by a second (Telegram's limit per
private chat); with random arrivals some messages wait for it: they are counted, and their
latency is shown apart from the others'.

PTB's rate limiter is off (as in bench_intake.py): each firm message makes two bot
messages (the relay and the firm's acknowledgement), 60 a second at 30 messages a second,
above Telegram's overall limit of about 30; `--rate-limit` turns it on.

    python bench/bench_relay.py                 # 30 msg/s, 2 rounds of 10 s per kind
    python bench/bench_relay.py --seconds 40 --rounds 4 --animators 80
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import re
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml
from sqlmodel import Session, col, select

from bot.config import DEFAULT_TERRITORIES_DIR, Settings
from bot.runtime import Services, build_services, running_bot
from bot.services import lifecycle
from knowledge.geography import default_geography
from storage.models import Need, NeedStatus, Outbox
from testing.botapi import BotMessage, LocalBotAPI, SimUser

TERRITORY_FILE = "bourgogne-industrie.yaml"
SIRET = "73282932000074"
COMMUNE = "Paray-le-Monial"
ANIMATOR_BASE = 910_000_000
RELAY_FIRM_BASE = 920_000_000
INTAKE_FIRM_BASE = 930_000_000
# The intake answers each firm types, one per measured step, in this order.
INTAKE_STEPS = 3
# Every relayed message carries its number, so its arrival is found in the chat.
_TOKEN = re.compile(r"#m(\d{6})")
# A relayed message held by the flood limit waits a minute; one spaced waits seconds.
HELD_AFTER = 30.0


# --------------------------------------------------------------------------------------
# What is measured
# --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Probe:
    """One measured message: when it left, the chat its answer is awaited in, when it came."""

    chat_id: int
    sent: float = 0.0
    arrived: float | None = None
    text: str = ""  # the bot's message that ended the measure
    spaced: bool = False  # relayed: waited for the per-chat spacing
    held: bool = False  # relayed: waited for the per-firm flood limit
    due_after: float = 0.0  # relayed: seconds from queued to due (outbox not_before)

    @property
    def latency(self) -> float | None:
        """Seconds from the user's message to the bot's, None while not arrived."""
        return None if self.arrived is None else self.arrived - self.sent


class Stopwatch:
    """Stamps the bot's messages as the double records them (its `on_bot_message` hook)."""

    def __init__(self, api: LocalBotAPI) -> None:
        self.by_token: dict[int, Probe] = {}
        # Intake: the next message in the firm's chat ends the step.
        self.by_chat: dict[int, Probe] = {}
        self._changed = asyncio.Event()
        api.on_bot_message.append(self._seen)

    def _seen(self, message: BotMessage, edited: bool) -> None:
        if edited:
            return
        now = time.perf_counter()
        probe = self.by_chat.pop(message.chat_id, None)
        if probe is None:
            match = _TOKEN.search(message.plain)
            probe = self.by_token.get(int(match[1])) if match else None
            if probe is None or probe.chat_id != message.chat_id or probe.arrived is not None:
                return
        probe.arrived, probe.text = now, message.plain
        self._changed.set()

    async def wait(self, done: Callable[[], bool], timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until `done()` (checked at each recorded arrival); False at the timeout."""
        deadline = time.perf_counter() + timeout
        while not done():
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))
        return True


@dataclass
class Chunk:
    """The messages of one kind sent in one round, at the rate."""

    kind: str  # "intake" or "relay"
    probes: list[Probe]
    send_seconds: float  # from the first message sent to the last


@dataclass
class Result:
    """Every measured chunk of the run, and how the run was laid out."""

    rate: float
    rounds: int
    seconds: float
    animators: int
    relay_firms: int
    intake_firms: int
    per_minute: int
    chunks: list[Chunk] = field(default_factory=list)

    def probes(self, kind: str) -> list[Probe]:
        """Every measured message of a kind."""
        return [p for c in self.chunks if c.kind == kind for p in c.probes]

    def sent(self, kind: str) -> int:
        """Messages of a kind sent."""
        return len(self.probes(kind))

    def delivered(self, kind: str) -> int:
        """Messages of a kind whose answer reached the chat awaited."""
        return sum(1 for p in self.probes(kind) if p.arrived is not None)


# --------------------------------------------------------------------------------------
# Set-up: territories, needs taken, threads opened, intake firms at the SIRET question
# --------------------------------------------------------------------------------------


def write_territories(directory: Path, animators: int) -> list[int]:
    """The example territory with `animators` chefs de projet; their Telegram ids."""
    data = yaml.safe_load((DEFAULT_TERRITORIES_DIR / TERRITORY_FILE).read_text(encoding="utf-8"))
    ids = [ANIMATOR_BASE + i for i in range(1, animators + 1)]
    data["animators"] = [
        {"name": f"Chef de projet {i:03d}", "email": f"cdp{i:03d}@example.org",
         "telegram_user_id": user_id}
        for i, user_id in enumerate(ids, 1)
    ]
    (directory / TERRITORY_FILE).write_text(
        yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return ids


async def seed_needs(services: Services, firms: list[int], taken_by: dict[int, int]
                     ) -> dict[int, int]:
    """Each firm's need, in progress, taken by its chef de projet; need id by firm."""
    commune = default_geography().resolve(COMMUNE).communes[0]
    territory = services.territories.for_epci(commune.epci_siren)
    assert territory is not None, f"{COMMUNE} is in no configured territory"
    now = services.clock()

    def work(session: Session) -> dict[int, int]:
        ids: dict[int, int] = {}
        for index, firm in enumerate(firms):
            need = Need(
                reference=lifecycle.next_reference(session, now.year),
                status=NeedStatus.SUBMITTED.value, theme="recrutement", urgency="month",
                firm_name=f"Fonderie {index + 1:04d}",
                description="Nous cherchons deux soudeurs qualifiés pour notre atelier.",
                contact_method="telegram", telegram_chat_id=firm, telegram_user_id=firm,
                commune_insee=commune.insee, commune_name=commune.name,
                epci_siren=commune.epci_siren, epci_name=commune.epci_name,
                territory_id=territory.id, consent_at=now, created_at=now, updated_at=now,
            )
            session.add(need)
            session.flush()
            lifecycle.record_created(session, need, actor=lifecycle.FIRM, now=now)
            # What "Je prends" leaves: the in_progress event names the animator.
            lifecycle.change_status(session, need, NeedStatus.IN_PROGRESS,
                                    actor=lifecycle.animator(taken_by[firm]), now=now)
            assert need.id is not None
            ids[firm] = need.id
        return ids

    return await services.db.run(work)


async def open_threads(api: LocalBotAPI, needs: dict[int, int], taken_by: dict[int, int]
                       ) -> dict[int, int]:
    """Each chef de projet writes to its firms ("Écrire à l'entreprise"), through the bot.

    Returns, by firm, the id of the relayed message in the firm's chat (the firm answers
    it with Telegram's "reply").
    """
    by_animator: dict[int, list[int]] = {}
    for firm, animator in taken_by.items():
        by_animator.setdefault(animator, []).append(firm)
    threads: dict[int, int] = {}

    async def one_animator(animator_id: int, firms: list[int]) -> None:
        animator = api.user(animator_id, "Claire")
        count = len(animator.messages)
        await animator.send_command("/demandes")
        count += 1
        await animator.wait_for_messages(count, timeout=60)
        for firm_id in firms:
            firm = api.user(firm_id, "Paul")
            firm.started = True  # the firm wrote to the bot during its intake
            await animator.press_data(f"rl:w:{needs[firm_id]}")
            count += 1
            await animator.wait_for_messages(count, timeout=60)
            before = len(firm.messages)
            await animator.send_text("Bonjour, je reprends votre demande. Où en êtes-vous ?")
            count += 1
            await animator.wait_for_messages(count, timeout=60)
            await firm.wait_for_messages(before + 1, timeout=60)
            relayed = firm.messages[-1]
            if "vous écrit à propos de TI-" not in relayed.plain:
                raise RuntimeError(f"the relay changed: {relayed.plain!r}")
            threads[firm_id] = relayed.message_id

    await asyncio.gather(*(one_animator(a, f) for a, f in by_animator.items()))
    return threads


async def start_intakes(api: LocalBotAPI, firms: list[int]) -> None:
    """Each firm opens the bot and accepts the terms: it is asked its SIRET."""

    async def one(firm_id: int) -> None:
        firm = api.user(firm_id, "Paul")
        await firm.send_command("/start")
        await firm.wait_for_messages(2, timeout=60)
        await firm.press("J'accepte")
        await firm.wait_for_messages(3, timeout=60)

    await asyncio.gather(*(one(f) for f in firms))


# --------------------------------------------------------------------------------------
# The measured rounds
# --------------------------------------------------------------------------------------


Action = Callable[[], Awaitable[None]]


async def at_rate(actions: list[Action], rate: float) -> float:
    """Run action i at i / rate seconds after the start (open loop); seconds taken."""
    start = time.perf_counter()
    for index, action in enumerate(actions):
        delay = start + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await action()
    return time.perf_counter() - start


def relay_actions(api: LocalBotAPI, watch: Stopwatch, schedule: list[tuple[int, int]],
                  threads: dict[int, int], taken_by: dict[int, int]
                  ) -> tuple[list[Action], list[Probe]]:
    """The firms' messages, (number, firm) each: a "reply" to the chef de projet's message."""
    actions: list[Action] = []
    probes: list[Probe] = []
    for number, firm_id in schedule:
        probe = Probe(chat_id=taken_by[firm_id])
        watch.by_token[number] = probe
        firm = api.user(firm_id)
        text = f"Il nous faut {2 + number % 4} soudeurs TIG, dès que possible (#m{number:06d})."

        async def send(firm: SimUser = firm, text: str = text, probe: Probe = probe) -> None:
            probe.sent = time.perf_counter()
            await firm.send_text(text, reply_to=threads[firm.user_id])

        actions.append(send)
        probes.append(probe)
    return actions, probes


def intake_actions(api: LocalBotAPI, watch: Stopwatch, firms: list[int], count: int
                   ) -> tuple[list[Action], list[Probe]]:
    """`count` intake answers: every firm its SIRET, then its name, then its commune."""
    actions: list[Action] = []
    probes: list[Probe] = []
    for step in range(INTAKE_STEPS):
        for firm_id in firms:
            if len(actions) == count:
                return actions, probes
            answer = (SIRET, f"Menuiserie {firm_id % 100_000}", COMMUNE)[step]
            probe = Probe(chat_id=firm_id)
            user = api.user(firm_id)

            async def send(firm: SimUser = user, answer: str = answer,
                           probe: Probe = probe) -> None:
                # The firm answers the question it was asked: its previous answer's
                # question must have come (it has, unless the bot is far behind).
                if not await watch.wait(lambda: firm.chat_id not in watch.by_chat, 60):
                    raise RuntimeError(f"firm {firm.user_id}: no question after 60 s")
                watch.by_chat[firm.chat_id] = probe
                probe.sent = time.perf_counter()
                await firm.send_text(answer)

            actions.append(send)
            probes.append(probe)
    return actions, probes


async def finish(watch: Stopwatch, probes: list[Probe], timeout: float) -> None:  # noqa: ASYNC109
    """Wait for every answer of a chunk (or the timeout: the missing ones stay missing)."""
    await watch.wait(lambda: all(p.arrived is not None for p in probes), timeout)
    mine = {id(p) for p in probes}
    for chat in [c for c, p in watch.by_chat.items() if id(p) in mine]:
        del watch.by_chat[chat]


async def mark_spacing(services: Services, probes: dict[int, Probe], chats: set[str]) -> None:
    """Which relayed messages waited (outbox `not_before` after `created_at`), and why."""

    def work(session: Session) -> list[tuple[dict[str, object], float]]:
        rows = session.exec(select(Outbox).where(Outbox.kind == "relay",
                                                 col(Outbox.recipient).in_(chats)))
        return [(row.payload, (row.not_before - row.created_at).total_seconds())
                for row in rows]

    for payload, waited in await services.db.run(work):
        match = _TOKEN.search(json.dumps(payload, ensure_ascii=False))
        probe = probes.get(int(match[1])) if match else None
        if probe is not None and waited > 0:
            probe.held = waited >= HELD_AFTER
            probe.spaced = not probe.held
            probe.due_after = waited


# --------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def relais(api: LocalBotAPI, tmp: Path, *, per_minute: int, rate_limit: bool
                 ) -> AsyncIterator[Services]:
    """Relais on SQLite with the generated territories, polling the double."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        TELEGRAM_BOT_TOKEN=api.token,
        TELEGRAM_API_URL=api.base_url,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp / 'relais.db'}",
        TERRITORIES_DIR=tmp / "territories",
        RELAIS_POLLING_TIMEOUT=1,
        RELAIS_RATE_LIMIT=rate_limit,
        RELAIS_RELAY_PER_MINUTE=per_minute,
        # Routing emails are not this benchmark's subject, nor the company directory.
        RELAIS_EMAIL_WORKER=False,
        RELAIS_FIRM_LOOKUP=False,
    )
    services = await build_services(settings)
    try:
        async with running_bot(services):
            yield services
    finally:
        await services.db.dispose()


def relay_schedule(messages: int, firms: list[int], seed: int) -> list[tuple[int, int]]:
    """(number, firm) of each relayed message: the firms in a new random order each pass."""
    rng = random.Random(seed)
    order: list[int] = []
    while len(order) < messages:
        shuffled = list(firms)
        rng.shuffle(shuffled)
        order += shuffled
    return list(enumerate(order[:messages], 1))


async def run(args: argparse.Namespace) -> Result:
    """Set up, then the rounds: intake and relay chunks alternating, each at the rate."""
    per_chunk = max(1, round(args.rate * args.seconds / args.rounds))
    relay_total = args.warm_up + per_chunk * args.rounds
    # Fewer messages per firm in the whole run than the flood limit lets through in a
    # minute: none is held, whatever the timing.
    relay_firms = max(args.animators, math.ceil(relay_total / max(args.per_minute - 1, 1)))
    intake_per_round = math.ceil(per_chunk / INTAKE_STEPS)
    intake_warm = math.ceil(args.warm_up / INTAKE_STEPS)
    result = Result(rate=args.rate, rounds=args.rounds, seconds=per_chunk / args.rate,
                    animators=args.animators, relay_firms=relay_firms,
                    intake_firms=intake_per_round * args.rounds, per_minute=args.per_minute)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "territories").mkdir()
        animators = write_territories(tmp / "territories", args.animators)
        api = LocalBotAPI(record_calls=False)
        await api.start()
        try:
            async with relais(api, tmp, per_minute=args.per_minute,
                              rate_limit=args.rate_limit) as services:
                firms = [RELAY_FIRM_BASE + i for i in range(1, relay_firms + 1)]
                taken_by = {firm: animators[i % len(animators)] for i, firm in enumerate(firms)}
                needs = await seed_needs(services, firms, taken_by)
                threads = await open_threads(api, needs, taken_by)
                intake_firms = [INTAKE_FIRM_BASE + i
                                for i in range(1, intake_warm + result.intake_firms + 1)]
                await start_intakes(api, intake_firms)

                watch = Stopwatch(api)
                schedule = relay_schedule(relay_total, firms, args.seed)
                relay_probes: dict[int, Probe] = {}

                async def chunk(kind: str, count: int, first: int) -> Chunk:
                    if kind == "relay":
                        part = schedule[first:first + count]
                        actions, probes = relay_actions(api, watch, part, threads, taken_by)
                        relay_probes.update(zip([n for n, _ in part], probes, strict=True))
                    else:
                        group = intake_firms[first:first + math.ceil(count / INTAKE_STEPS)]
                        actions, probes = intake_actions(api, watch, group, count)
                    seconds = await at_rate(actions, args.rate)
                    await finish(watch, probes, args.timeout)
                    if kind == "intake" and count == INTAKE_STEPS * len(group):
                        _check_intake(api, group)
                    return Chunk(kind, probes, seconds)

                # Warm-up (first statements compiled, pools filled): not counted.
                await chunk("intake", args.warm_up, 0)
                await chunk("relay", args.warm_up, 0)
                for round_ in range(args.rounds):
                    kinds = ("intake", "relay") if round_ % 2 == 0 else ("relay", "intake")
                    for kind in kinds:
                        first = (args.warm_up + round_ * per_chunk if kind == "relay"
                                 else intake_warm + round_ * intake_per_round)
                        result.chunks.append(await chunk(kind, per_chunk, first))
                await mark_spacing(services, relay_probes, {str(a) for a in animators})
        finally:
            await api.stop()
    return result


def _check_intake(api: LocalBotAPI, firms: list[int]) -> None:
    """After SIRET, name and commune the firm is asked its theme (the flow may change)."""
    for firm_id in firms:
        last = api.user(firm_id).messages[-1]
        if "Recruter" not in last.button_labels():
            raise RuntimeError(f"the intake changed; after the commune: {last.plain!r}")


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else math.nan


def _ms(values: list[float], q: float) -> str:
    return f"{1000 * _pct(values, q):.1f}"


def report(result: Result) -> None:
    """Print the side-by-side table and the ratios."""
    intake, relay = result.probes("intake"), result.probes("relay")
    sends = {kind: sum(len(c.probes) for c in result.chunks if c.kind == kind)
             / max(sum(c.send_seconds for c in result.chunks if c.kind == kind), 1e-9)
             for kind in ("intake", "relay")}
    print(f"\nSQLite, local Bot API over loopback HTTP, one process; {result.rate:g} messages/s "
          f"(open loop), {result.rounds} round(s) of {result.seconds:.1f} s per kind, "
          f"kinds alternating\n{result.animators} chefs de projet; {result.relay_firms} firms "
          f"writing (each under the flood limit of {result.per_minute}/min); "
          f"{result.intake_firms} firms in the intake\n")
    head = ("| measured | sent | delivered | sent/s | p50 ms | p99 ms | max ms "
            "| spaced 1 s/chat | held (flood) |")
    print(head)
    print("|---|" + "---:|" * (head.count("|") - 2))
    rows = [
        ("intake step (answer → next question)", intake, sends["intake"], "", ""),
        ("relay (firm → chef de projet's chat)", relay, sends["relay"],
         str(sum(p.spaced for p in relay)), str(sum(p.held for p in relay))),
        ("  relay, not spaced", [p for p in relay if not p.spaced and not p.held], None, "", ""),
        ("  relay, spaced", [p for p in relay if p.spaced], None, "", ""),
    ]
    for name, probes, rate, spaced, held in rows:
        got = [p.latency for p in probes if p.latency is not None]
        print(f"| {name} | {len(probes)} | {len(got)} | "
              f"{'' if rate is None else f'{rate:.1f}'} | {_ms(got, 0.5)} | {_ms(got, 0.99)} | "
              f"{_ms(got, 1.0)} | {spaced} | {held} |")
    base = [p.latency for p in intake if p.latency is not None]
    every = [p.latency for p in relay if p.latency is not None]
    direct = [p.latency for p in relay if p.latency is not None and not p.spaced and not p.held]
    print()
    for label, values in (("all relayed messages", every), ("relayed, not spaced", direct)):
        print(f"relay / intake step, {label}: p50 {_pct(values, 0.5) / _pct(base, 0.5):.2f}x, "
              f"p99 {_pct(values, 0.99) / _pct(base, 0.99):.2f}x")
    spaced = [p for p in relay if p.spaced and p.latency is not None]
    if spaced:
        due = [p.due_after for p in spaced]
        late = [p.latency - p.due_after for p in spaced if p.latency is not None]
        print(f"spaced messages: due p50 {_pct(due, 0.5):.2f} s / max {_pct(due, 1.0):.2f} s "
              f"after they were queued (1 s after the previous one to that chat); delivered "
              f"p50 {_pct(late, 0.5):.2f} s / max {_pct(late, 1.0):.2f} s after their due time "
              f"(the outbox sweeper wakes at the next due time)")
    by_round: dict[str, list[str]] = {"intake": [], "relay": []}
    for chunk in result.chunks:
        got = [p.latency for p in chunk.probes if p.latency is not None]
        by_round[chunk.kind].append(_ms(got, 0.5))
    print(f"p50 ms per round: intake {', '.join(by_round['intake'])}; "
          f"relay {', '.join(by_round['relay'])}")
    missing = {k: result.sent(k) - result.delivered(k) for k in ("intake", "relay")}
    if any(missing.values()):
        print(f"NOT DELIVERED within the timeout: {missing}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=30.0, help="messages a second, each kind")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="measured seconds per kind, split over the rounds")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds; each has one chunk of each kind, the order alternating")
    parser.add_argument("--animators", type=int, default=40,
                        help="chefs de projet the firms' needs are spread over")
    parser.add_argument("--per-minute", type=int, default=6,
                        help="RELAIS_RELAY_PER_MINUTE, the per-firm flood limit")
    parser.add_argument("--warm-up", type=int, default=30,
                        help="messages of each kind sent first and not counted")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to wait for the last answers of a chunk")
    parser.add_argument("--rate-limit", action="store_true",
                        help="PTB's AIORateLimiter on (Telegram's ~30 messages/s overall)")
    parser.add_argument("--seed", type=int, default=7, help="order of the firms' messages")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.seconds <= 0 or args.rounds < 1 or args.animators < 1:
        parser.error("--rate, --seconds, --rounds and --animators must be positive")
    return args


def main(argv: list[str] | None = None) -> Result:
    """Run the benchmark, print the report, return the figures."""
    result = asyncio.run(run(parse_args(argv)))
    report(result)
    return result


if __name__ == "__main__":
    main()
