"""Application wiring and lifecycle: services, the PTB Application, polling and workers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import urlsplit

from telegram.error import InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder

from bot.catalogue import entries, t
from bot.config import Settings, parse_offsets
from bot.directory import FirmDirectory, RechercheEntreprisesClient
from bot.email_worker import EmailWorker, mail_domain, mail_local_part
from bot.http import AiohttpRequest
from bot.mail import MailSender
from bot.messages import Bullets, Message, Span, Text
from bot.poller import ALLOWED_UPDATES, UpdatePoller
from bot.reminders import ReminderScheduler
from bot.routes import Features, build_dispatcher
from bot.services import outbox
from bot.services.animator import AnimatorService
from bot.services.animators import Animators, user_ids
from bot.services.chat import ChatService
from bot.services.delivery import DeliveryAlerts
from bot.services.digests import DigestService
from bot.services.followup import FollowUpService
from bot.services.inbound import InboundService
from bot.services.intake import IntakeService
from bot.services.limits import ChatLimits, MailLimits
from bot.services.mail_notices import NewNeedNotices
from bot.services.meetings import MeetingService
from bot.services.mutualisation import RadarService
from bot.services.questions import QuestionService
from bot.services.relay import RelayService
from bot.services.routing import RoutingService
from bot.services.types import Delivery, Incoming, Result
from bot.services.workdays import add_working_days
from bot.turn import TurnRunner
from handlers.mail.inbox import ImapSettings, MailboxReader
from handlers.telegram import deliver, install_handlers, register_commands
from knowledge.cards import CARDS_DIR
from knowledge.geography import Geography, default_geography
from knowledge.retrieval import KnowledgeBase
from knowledge.routing import Router
from knowledge.territories import TerritoryDirectory, load_territories
from storage.db import Database
from storage.types import utcnow

__all__ = ["Services", "UpdatePoller", "build_application", "build_services",
           "freeze_startup_heap", "running_bot"]

log = logging.getLogger(__name__)

@dataclass
class Services:
    """Everything the handlers need, created once per process."""

    settings: Settings
    db: Database
    geography: Geography
    territories: TerritoryDirectory
    intake: IntakeService
    chat: ChatService
    turns: TurnRunner
    questions: QuestionService
    clock: Callable[[], datetime] = utcnow
    outbox_lease: timedelta = outbox.LEASE
    retry_horizon: timedelta = outbox.HORIZON
    alerts: DeliveryAlerts | None = None
    firms: FirmDirectory | None = None
    meetings: MeetingService | None = None
    inbound: InboundService | None = None
    followup: FollowUpService | None = None
    digests: DigestService | None = None
    animators: Animators | None = None
    delivered: outbox.DeliveredMarker = field(init=False)
    _locks: dict[int, asyncio.Lock] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.delivered = outbox.DeliveredMarker(self.db, self.clock)

    def chat_lock(self, chat_id: int) -> asyncio.Lock:
        """The lock serialising the handling of one chat's updates in this process."""
        lock = self._locks.get(chat_id)
        if lock is None:
            lock = self._locks[chat_id] = asyncio.Lock()
        if len(self._locks) > 10_000:
            # Forget idle chats' locks so a long-running process does not grow forever.
            for key in [k for k, v in self._locks.items() if not v.locked() and k != chat_id]:
                del self._locks[key]
        return lock

    # --- handlers.ports.ChatPort: what the Telegram adapter calls -------------------------

    async def handle(self, event: Incoming) -> Result:
        """Handle one thing a person did in a chat."""
        return await self.turns.handle(event)

    async def report_undeliverable(self, chat_id: int, error: str) -> None:
        """Telegram refused a chat for good: the animators are told."""
        await self.chat.report_undeliverable(self.db, chat_id, error, now=self.clock())

    async def keep_refused(self, delivery: Delivery, error: str) -> None:
        """Telegram refused a message for good: an animator's is emailed and kept."""
        if self.animators is None or delivery.channel != "telegram":
            return
        animators, now = self.animators, self.clock()
        await self.db.run(lambda session: animators.keep_refused(
            session, int(delivery.recipient), delivery.message, error,
            source=f"outbox:{delivery.outbox_id}", now=now))

    async def delivery_failed(self, outbox_id: int, error: str, *,
                              retry_after: float | None = None,
                              permanent: bool = False) -> None:
        """Record a failed delivery attempt of an outbox row (given up after the horizon)."""
        await outbox.record_failure(self.db, outbox_id, error=error, now=self.clock(),
                                    retry_after=retry_after, permanent=permanent,
                                    horizon=self.retry_horizon,
                                    on_give_up=self.alerts.given_up if self.alerts else None)

    async def release(self, outbox_ids: Sequence[int]) -> None:
        """Give back the lease on outbox rows not attempted."""
        await outbox.release(self.db, outbox_ids)

    def mark_delivered(self, outbox_ids: Sequence[int]) -> Awaitable[None]:
        """Mark outbox rows delivered now; the awaitable ends once that is committed."""
        return self.delivered.add(outbox_ids)

    async def check_late(self) -> int:
        """Tell the animators about messages newly late; return the alerts written."""
        alerts = self.alerts
        if alerts is None:
            return 0
        now = self.clock()
        return await self.db.run(lambda session: alerts.check_late(session, now))

    async def animator_chat_ids(self) -> set[int]:
        """Every animator's Telegram chat (territory files and invitations)."""
        return await self.db.run(lambda session: user_ids(session, self.territories))


_FROZEN: list[bool] = []


def freeze_startup_heap() -> None:
    """Once per process: leave the start-up objects out of the collector's full passes.

    The geography, the territories, the knowledge base and the texts are ~320,000 objects
    that live as long as the process. A full (generation 2) collection walked them all,
    holding the interpreter, and so the event loop, even while a pass ran in the database's
    worker thread: 192–1,117 ms on a machine at load 8; frozen, under 1 ms.
    """
    if _FROZEN:
        return
    _FROZEN.append(True)
    gc.collect()
    gc.freeze()


async def build_services(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utcnow,
    geography: Geography | None = None,
) -> Services:
    """Open the database (creating tables), load geography and territories."""
    geo = geography or default_geography()
    lease = timedelta(seconds=settings.outbox_lease_seconds)
    horizon = timedelta(hours=settings.retry_hours)
    # Process-wide: the turn writes its replies with the default lease.
    outbox.configure(lease=lease, horizon=horizon)
    territories = load_territories(settings.territories_dir, geography=geo)
    db = Database(settings.database_url, busy_timeout=settings.db_busy_timeout)
    await db.create_all()
    kb = KnowledgeBase.load(settings.cards_dir)
    for problem in kb.problems:
        log.warning("card skipped: %s", problem)
    limits = ChatLimits(messages_per_minute=settings.limit_messages_per_minute,
                        questions_per_minute=settings.limit_questions_per_minute,
                        needs_per_day=settings.limit_needs_per_day,
                        exempt=await db.run(lambda session: user_ids(session, territories)))
    questions = QuestionService(kb, tz=settings.tz, clock=clock,
                                secret=settings.telegram_bot_token, limits=limits)
    router = Router(territories, geo)
    routing = RoutingService(router, territories, tz=settings.tz,
                             mail_domain=mail_domain(settings.mail_from), clock=clock,
                             reply_local=(mail_local_part(settings.mail_from)
                                          if settings.imap_host else None))
    animators = Animators(territories, secret=settings.telegram_bot_token,
                          mail_domain=mail_domain(settings.mail_from))
    routing.animators = animators
    animators.limits = limits
    firms = None
    if settings.firm_lookup:
        client = RechercheEntreprisesClient(settings.recherche_entreprises_url,
                                            timeout=settings.firm_lookup_timeout)
        firms = FirmDirectory(client, db, ttl=timedelta(days=settings.firm_cache_days),
                              now=clock)
    meetings = MeetingService(territories, tz=settings.tz,
                              mail_domain=mail_domain(settings.mail_from),
                              offsets=parse_offsets(settings.reminder_offsets))
    followup = FollowUpService(territories, tz=settings.tz,
                               mail_domain=mail_domain(settings.mail_from),
                               reply_local=(mail_local_part(settings.mail_from)
                                            if settings.imap_host else None),
                               stale_days=settings.stale_days,
                               escalate_factor=settings.escalate_factor)
    animator = AnimatorService(territories, routing, followup, tz=settings.tz)
    digests = DigestService(territories, tz=settings.tz,
                            mail_domain=mail_domain(settings.mail_from), db=db, clock=clock)
    intake = IntakeService(geo, territories, questions, routing, tz=settings.tz, firms=firms,
                           limits=limits)
    relay = RelayService(territories, per_minute=settings.relay_per_minute,
                         lease=timedelta(seconds=settings.outbox_lease_seconds),
                         mail_domain=mail_domain(settings.mail_from),
                         reply_local=(mail_local_part(settings.mail_from)
                                      if settings.imap_host else None))
    chat = ChatService(intake, questions, territories, relay, tz=settings.tz,
                       animators=animators)
    dispatcher = build_dispatcher(Features(
        chat=chat, intake=intake, animator=animator, meetings=meetings, followup=followup,
        digests=digests, radar=RadarService(territories, kb, db), relay=relay))
    turns = TurnRunner(db, dispatcher, clock=clock,
                       lease=timedelta(seconds=settings.outbox_lease_seconds), limits=limits)
    inbound = InboundService(geo, territories, routing=routing, questions=questions,
                             tz=settings.tz, mail_domain=mail_domain(settings.mail_from),
                             reply_local=mail_local_part(settings.mail_from),
                             max_bytes=settings.mail_max_bytes, relay=relay,
                             limits=MailLimits(
                                 needs_per_hour=settings.limit_mail_needs_per_hour,
                                 needs_per_hour_total=settings.limit_mail_needs_per_hour_total,
                                 replies_per_day=settings.limit_mail_replies_per_day,
                                 thread_per_hour=settings.limit_mail_thread_per_hour),
                             notices=NewNeedNotices(
                                 territories,
                                 period=timedelta(minutes=settings.limit_mail_notice_minutes)))
    # Loaded now rather than by the first turn or pass, on the event loop: the French
    # texts, and the public holidays the working-day deadlines skip (a few hundred ms).
    entries()
    add_working_days(clock().astimezone(settings.tz).date(), 1)
    freeze_startup_heap()
    return Services(
        settings=settings,
        inbound=inbound,
        followup=followup,
        digests=digests,
        db=db,
        geography=geo,
        territories=territories,
        intake=intake,
        chat=chat,
        turns=turns,
        questions=questions,
        clock=clock,
        outbox_lease=lease,
        retry_horizon=horizon,
        alerts=DeliveryAlerts(territories, tz=settings.tz, horizon=horizon,
                              late_after=timedelta(minutes=settings.late_alert_minutes)),
        firms=firms,
        meetings=meetings,
        animators=animators,
    )


def build_application(services: Services) -> Application:
    """The python-telegram-bot Application, pointed at TELEGRAM_API_URL, with our handlers."""
    settings = services.settings
    assert settings.telegram_bot_token
    api = settings.telegram_api_url.rstrip("/")
    application = (
        ApplicationBuilder()
        .token(settings.telegram_bot_token)
        .base_url(api)
        .base_file_url(api.removesuffix("/bot") + "/file/bot")
        # Our own poller (below) confirms updates only once they are handled.
        .updater(None)
        .request(AiohttpRequest(pool_size=settings.http_pool_size, pool_timeout=30))
        # getUpdates gets its own connection, as PTB does, so a long poll never blocks a send.
        .get_updates_request(
            AiohttpRequest(pool_size=1, read_timeout=settings.polling_timeout + 10)
        )
    )
    if settings.rate_limit:
        application = application.rate_limiter(
            AIORateLimiter(overall_max_rate=30, overall_time_period=1,
                           group_max_rate=20, group_time_period=60, max_retries=1)
        )
    application = application.build()
    application.bot_data["services"] = services
    install_handlers(application)
    return application


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def sweep_outbox(application: Application, services: Services, stop: asyncio.Event,
                       *, interval: float = 1.0) -> None:
    """Deliver outbox rows left behind (crash, retry after an error), oldest first.

    Also, every `interval`, tells the animators about messages (of any channel) late
    beyond RELAIS_LATE_ALERT_MINUTES.
    """
    looked = 0.0
    while not stop.is_set():
        if time.monotonic() - looked >= interval:
            looked = time.monotonic()
            try:
                await services.check_late()
            except Exception:  # the alerts must never hold up the deliveries
                log.exception("late messages check failed")
        try:
            rows = await outbox.claim_due(services.db, services.clock(), channel="telegram",
                                          lease=services.outbox_lease)
            if rows:
                by_chat: dict[str, list] = {}
                for row in rows:
                    by_chat.setdefault(row.recipient, []).append(row)
                await asyncio.gather(*(deliver(application.bot, services, chat_rows)
                                       for chat_rows in by_chat.values()))
                continue
            # A message scheduled for later (a relayed one spaced a second) goes when due,
            # not up to a whole interval after.
            due = await outbox.next_due(services.db, services.clock(), channel="telegram")
            wait = interval if due is None else min(interval, max(0.02, due))
        except Exception:
            log.exception("outbox sweep failed")
            wait = interval
        await _sleep_or_stop(stop, wait)


def _cards_signature(directory: Path) -> tuple[tuple[str, int, int], ...]:
    try:
        return tuple(
            sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in directory.glob("*.md"))
        )
    except OSError:
        return ()


async def watch_cards(services: Services, stop: asyncio.Event, *, interval: float = 2.0) -> None:
    """Reload the programme cards when a file changes; tell the animators about broken ones."""
    kb = services.questions.kb
    directory = services.settings.cards_dir or CARDS_DIR
    seen = _cards_signature(directory)
    while not stop.is_set():
        await _sleep_or_stop(stop, interval)
        current = _cards_signature(directory)
        if current == seen:
            continue
        seen = current
        # Indexing takes a few hundred ms: off the event loop (the swap is atomic).
        problems = await asyncio.to_thread(kb.reload)
        log.info("cards reloaded: %d cards, %d problems", len(kb.cards), len(problems))
        if problems:
            await _notify_animators(services, problems)


async def _notify_animators(services: Services, problems: list) -> None:  # type: ignore[type-arg]
    text = Text((*t("common.cards_broken").blocks,
                 Bullets(tuple((Span(str(p)),) for p in problems[:20]))))
    now = services.clock()
    await services.db.run(lambda session: outbox.enqueue_for_chats(
        session, user_ids(session, services.territories), Message(text), now=now))


class StartAborted(Exception):
    """Asked to stop while still waiting for the Bot API at start."""


# Waits between two attempts to reach the Bot API at start: doubling, at most a minute.
_START_RETRY_FIRST = 1.0
_START_RETRY_MAX = 60.0


async def _initialize(application: Application, stop: asyncio.Event | None) -> None:
    """Initialise the application, waiting (capped backoff) while the Bot API is unreachable.

    A refused token is final (InvalidToken is raised); a network failure or a 5xx answer is
    not: a bot started during a network or Telegram outage starts when it is over.
    """
    delay = _START_RETRY_FIRST
    while True:
        try:
            await application.initialize()
            return
        except InvalidToken:
            raise
        except (NetworkError, RetryAfter) as exc:
            log.warning("Bot API unreachable at start (%s); trying again in %.0f s", exc, delay)
        waiting = stop if stop is not None else asyncio.Event()
        await _sleep_or_stop(waiting, delay)
        if waiting.is_set():
            raise StartAborted
        delay = min(delay * 2, _START_RETRY_MAX)


@contextlib.asynccontextmanager
async def running_bot(
    services: Services,
    *,
    on_error: Callable[[object, Exception], Awaitable[None]] | None = None,
    polling: bool = True,
    stop_signal: asyncio.Event | None = None,
) -> AsyncIterator[tuple[Application, asyncio.Event, asyncio.Task[None]]]:
    """Start the bot (initialise, menu, sweeper, poller); stop it cleanly on exit.

    While the Bot API cannot be reached, the start waits and tries again (see
    `_initialize`); setting `stop_signal` meanwhile raises `StartAborted`.
    """
    application = build_application(services)
    application.add_error_handler(_log_error)
    await _initialize(application, stop_signal)
    if services.animators is not None:  # invitation links name the bot (getMe)
        services.animators.bot_username = application.bot.username
    try:
        await register_commands(application)
    except TelegramError as exc:  # the menu is a convenience: the bot works without it
        log.warning("command menu not published: %s", exc)
    await application.start()
    stop = asyncio.Event()
    poller = UpdatePoller(application, timeout=services.settings.polling_timeout,
                          concurrency=services.settings.concurrency,
                          queue_limit=services.settings.limit_chat_queue)
    application.bot_data["poller"] = poller
    sweeper = asyncio.create_task(sweep_outbox(application, services, stop), name="outbox")
    # One worker per SMTP connection; they claim disjoint rows (leases, SKIP LOCKED).
    workers = [EmailWorker(services.db, MailSender.from_settings(services.settings),
                           mail_from=services.settings.mail_from,
                           territories=services.territories, clock=services.clock,
                           lease=services.outbox_lease, horizon=services.retry_horizon,
                           alerts=services.alerts)
               for _ in range(services.settings.smtp_connections
                              if services.settings.email_worker else 1)]
    application.bot_data["email_worker"] = workers[0]
    mailers = [asyncio.create_task(
        worker.run(stop, interval=services.settings.email_poll_interval)
        if services.settings.email_worker else worker.sender.close(),
        name=f"email-{index}",
    ) for index, worker in enumerate(workers)]
    watcher = asyncio.create_task(
        watch_cards(services, stop, interval=services.settings.cards_watch_interval),
        name="cards",
    )
    reminders = None
    if services.meetings is not None:
        reminders = ReminderScheduler(services.db, services.meetings, services.clock,
                                      tick=services.settings.reminder_tick,
                                      followup=services.followup,
                                      followup_tick=services.settings.followup_tick,
                                      digests=services.digests, tz=services.settings.tz,
                                      retention=(services.settings.retention_years,
                                                 services.settings.raw_days))
        application.bot_data["reminders"] = reminders
        await reminders.start()
    mailbox = None
    settings = services.settings
    if settings.imap_host and services.inbound is not None:
        mailbox = MailboxReader(
            ImapSettings(host=settings.imap_host, port=settings.imap_port,
                         security=settings.imap_security,
                         username=settings.imap_username or "",
                         password=settings.imap_password or "", folder=settings.imap_folder,
                         poll_interval=settings.imap_poll_interval),
            services.db, services.inbound, clock=services.clock,
            own_addresses=frozenset({parseaddr(settings.mail_from)[1].lower()}),
            mail_domain=mail_domain(settings.mail_from), max_bytes=settings.mail_max_bytes,
            max_parts=settings.mail_max_parts, parse_timeout=settings.mail_parse_timeout,
            authserv_ids=settings.authserv_ids)
        application.bot_data["mailbox"] = mailbox
        if not settings.authserv_ids:
            log.warning("MAIL_AUTHSERV_ID is unset: no email is verified, so none will "
                        "acknowledge, refuse or complete a need (the animator decides)")
    reading = asyncio.create_task(mailbox.run(stop) if mailbox else asyncio.sleep(0),
                                  name="mailbox")
    # In webhook mode Telegram pushes updates (and refuses getUpdates): the task only waits.
    polling_task = asyncio.create_task(poller.run(stop) if polling else stop.wait(),
                                       name="poller")
    polling = polling_task
    try:
        yield application, stop, polling
    finally:
        stop.set()
        if reminders is not None:
            reminders.stop()
        polling.cancel()
        sweeper.cancel()
        watcher.cancel()
        reading.cancel()
        for task in (polling, sweeper, watcher, reading):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # The email worker finishes its current message and closes its connection.
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.gather(*mailers), timeout=10)
        await services.delivered.flush()
        if services.firms is not None:
            await services.firms.client.aclose()
        await application.stop()
        await application.shutdown()


async def _log_error(update: object, context: object) -> None:
    error = getattr(context, "error", None)
    log.error("error while handling %s", getattr(update, "update_id", update), exc_info=error)


async def serve_forever(services: Services, *, host: str, port: int) -> None:
    """Webhook mode: set the webhook, serve it with uvicorn until SIGINT/SIGTERM."""
    import uvicorn

    from bot.webhook import UvicornServer, WebhookServer

    settings = services.settings
    assert settings.webhook_url and settings.webhook_secret
    path = urlsplit(settings.webhook_url).path or "/telegram"
    async with running_bot(services, polling=False) as (application, stop, _task):
        await application.bot.set_webhook(url=settings.webhook_url,
                                          secret_token=settings.webhook_secret,
                                          allowed_updates=list(ALLOWED_UPDATES))
        server = WebhookServer(services, application, path=path,
                               secret=settings.webhook_secret)
        application.bot_data["webhook"] = server
        sweeper = asyncio.create_task(server.sweep(stop), name="pending-updates")
        figures = asyncio.create_task(server.refresh(stop), name="metrics")
        # No proxy-header rewriting: nothing uses the client's address, and it costs a
        # pass over the headers of every update.
        config = uvicorn.Config(server.app, host=host, port=port, log_config=None,
                                lifespan="off", access_log=False, proxy_headers=False)
        try:
            await UvicornServer(config).serve()
        finally:
            stop.set()
            await server.drain()
            sweeper.cancel()
            figures.cancel()
            for task in (sweeper, figures):
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def run_forever(services: Services, stop_signal: asyncio.Event) -> None:
    """Run until `stop_signal` is set or polling dies (e.g. a refused token)."""
    try:
        async with running_bot(services, stop_signal=stop_signal) as (_app, _stop, polling):
            waiter = asyncio.create_task(stop_signal.wait())
            done, _ = await asyncio.wait({waiter, polling}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if polling in done and polling.exception() is not None:
                raise polling.exception()  # type: ignore[misc]
    except StartAborted:
        log.info("stopped before the Bot API could be reached")
