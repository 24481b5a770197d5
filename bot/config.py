"""Runtime configuration, read from the environment or a `.env` file."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_TERRITORIES_DIR", "Settings", "load_settings", "parse_offsets"]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TERRITORIES_DIR = REPO_ROOT / "territories"

_OFFSET = re.compile(r"^\s*(\d{1,4})\s*([dhm])\s*$", re.IGNORECASE)
_UNIT = {"d": "days", "h": "hours", "m": "minutes"}


def parse_offsets(value: str) -> tuple[timedelta, ...]:
    """`REMINDER_OFFSETS` ("24h,2h", "3m", "1d"): positive, distinct, largest first."""
    offsets: set[timedelta] = set()
    for part in value.split(","):
        match = _OFFSET.match(part)
        if match is None:
            raise ValueError(f"délai de rappel illisible {part.strip()!r} (ex. 24h, 2h, 30m)")
        offset = timedelta(**{_UNIT[match[2].lower()]: int(match[1])})
        if offset <= timedelta(0):
            raise ValueError("un délai de rappel doit être positif")
        offsets.add(offset)
    return tuple(sorted(offsets, reverse=True))


class Settings(BaseSettings):
    """Every setting Relais reads, with its environment variable name."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False,
        populate_by_name=True,
    )

    telegram_bot_token: str | None = Field(default=None, alias="TELEGRAM_BOT_TOKEN")
    telegram_api_url: str = Field(default="https://api.telegram.org/bot", alias="TELEGRAM_API_URL")
    database_url: str = Field(
        default="sqlite+aiosqlite:///./data/relais.db", alias="DATABASE_URL"
    )
    relais_timezone: str = Field(default="Europe/Paris", alias="RELAIS_TIMEZONE")
    territories_dir: Path = Field(default=DEFAULT_TERRITORIES_DIR, alias="TERRITORIES_DIR")
    # Programme cards (Markdown + YAML front matter); edits are picked up while running.
    cards_dir: Path | None = Field(default=None, alias="RELAIS_CARDS_DIR")
    cards_watch_interval: float = Field(default=2.0, alias="RELAIS_CARDS_WATCH", gt=0)
    # How long PTB long-polls getUpdates; short in tests so shutdown is quick.
    polling_timeout: int = Field(default=30, alias="RELAIS_POLLING_TIMEOUT", ge=0, le=50)
    # Updates of different chats handled at once; one chat is always handled in order.
    concurrency: int = Field(default=64, alias="RELAIS_CONCURRENCY", ge=1, le=1024)
    # Keep to Telegram's flood limits (about 30 messages/s overall, 20/min per group) with
    # PTB's AIORateLimiter, which also retries once on a 429.
    rate_limit: bool = Field(default=True, alias="RELAIS_RATE_LIMIT")
    # HTTP connections to the Bot API. httpcore scans its whole pool for every request,
    # so a large pool costs CPU on each call; a few keep-alive connections suffice.
    http_pool_size: int = Field(default=8, alias="RELAIS_HTTP_POOL_SIZE", ge=1, le=256)
    # How long a unit of work waits (in a worker thread) for another connection's SQLite
    # lock before the update is put off and handled again later.
    db_busy_timeout: float = Field(default=5.0, alias="RELAIS_DB_BUSY_TIMEOUT", gt=0, le=600)
    # How long a message being delivered stays reserved before another worker may retry it.
    outbox_lease_seconds: float = Field(default=15.0, alias="RELAIS_OUTBOX_LEASE", gt=0, le=600)
    # A message Telegram or the SMTP server refuses for now (outage, 5xx, timeout) is tried
    # again, at most 15 minutes apart, for this many hours before it is given up.
    retry_hours: float = Field(default=48.0, alias="RELAIS_RETRY_HOURS", gt=0, le=24 * 30)
    # A message still waiting this many minutes after it was written alerts the territory's
    # animators (once per recipient while it waits).
    late_alert_minutes: float = Field(default=60.0, alias="RELAIS_LATE_ALERT_MINUTES", gt=0)

    # Outgoing email (partners, animators). SMTP_SECURITY: none | starttls | tls.
    smtp_host: str = Field(default="localhost", alias="SMTP_HOST")
    smtp_port: int = Field(default=587, alias="SMTP_PORT", ge=1, le=65535)
    smtp_security: Literal["none", "starttls", "tls"] = Field(
        default="starttls", alias="SMTP_SECURITY"
    )
    smtp_username: str | None = Field(default=None, alias="SMTP_USERNAME")
    smtp_password: str | None = Field(default=None, alias="SMTP_PASSWORD")
    smtp_timeout: float = Field(default=10.0, alias="SMTP_TIMEOUT", gt=0)
    # Emails sent in parallel, each over its own reused connection: a burst (a thousand
    # meeting reminders due at the same minute) is not held up by one connection's pace.
    smtp_connections: int = Field(default=2, alias="SMTP_CONNECTIONS", ge=1, le=16)
    mail_from: str = Field(default="Relais <relais@localhost>", alias="MAIL_FROM")
    # Off only in the intake benchmark, which measures the conversation, not SMTP delivery.
    email_worker: bool = Field(default=True, alias="RELAIS_EMAIL_WORKER")
    email_poll_interval: float = Field(default=2.0, alias="RELAIS_EMAIL_POLL", gt=0)

    # Retention: needs untouched for this many years are anonymised; delivered messages,
    # raw emails and update ids are purged after RELAIS_RAW_DAYS days (daily, 03:30).
    retention_years: int = Field(default=3, alias="RELAIS_RETENTION_YEARS", ge=1, le=20)
    raw_days: int = Field(default=90, alias="RELAIS_RAW_DAYS", ge=1, le=3650)

    # Webhook mode (`relais serve`): the public HTTPS URL Telegram posts to (its path is
    # served), and the secret Telegram sends in X-Telegram-Bot-Api-Secret-Token.
    webhook_url: str | None = Field(default=None, alias="WEBHOOK_URL")
    webhook_secret: str | None = Field(default=None, alias="WEBHOOK_SECRET")
    # Seconds a webhook update being handled stays reserved by its instance.
    update_lease: float = Field(default=30.0, alias="RELAIS_UPDATE_LEASE", gt=0, le=600)
    # `/metrics` (webhook mode) asks for `Authorization: Bearer <METRICS_TOKEN>` when set; its
    # figures (and /readyz's SMTP state) are read every RELAIS_METRICS_INTERVAL seconds.
    metrics_token: str | None = Field(default=None, alias="METRICS_TOKEN")
    metrics_interval: float = Field(default=15.0, alias="RELAIS_METRICS_INTERVAL", gt=0, le=3600)

    # Log lines as JSON objects (for a log collector) instead of text.
    log_json: bool = Field(default=False, alias="RELAIS_LOG_JSON")

    # `relais run` upgrades the database schema (Alembic) before starting, unless false.
    auto_migrate: bool = Field(default=True, alias="RELAIS_AUTO_MIGRATE")

    # Public company directory (API Recherche d'entreprises): a SIRET gives the firm's
    # name, commune, activity, size and branch. Off: the intake asks everything.
    firm_lookup: bool = Field(default=True, alias="RELAIS_FIRM_LOOKUP")
    recherche_entreprises_url: str = Field(
        default="https://recherche-entreprises.api.gouv.fr", alias="RECHERCHE_ENTREPRISES_URL"
    )
    firm_lookup_timeout: float = Field(default=3.0, alias="RELAIS_FIRM_TIMEOUT", gt=0, le=30)
    firm_cache_days: float = Field(default=30.0, alias="RELAIS_FIRM_CACHE_DAYS", gt=0)

    # The bot's mailbox (email channel). Without IMAP_HOST no mail is read, and partners'
    # replies go straight to the animator instead of the need's reply address.
    imap_host: str | None = Field(default=None, alias="IMAP_HOST")
    imap_port: int = Field(default=993, alias="IMAP_PORT", ge=1, le=65535)
    imap_security: Literal["none", "tls"] = Field(default="tls",
                                                              alias="IMAP_SECURITY")
    imap_username: str | None = Field(default=None, alias="IMAP_USERNAME")
    imap_password: str | None = Field(default=None, alias="IMAP_PASSWORD")
    imap_folder: str = Field(default="INBOX", alias="IMAP_FOLDER")
    # Seconds between two looks at the mailbox when the server has no IDLE (or as a cap).
    imap_poll_interval: float = Field(default=60.0, alias="IMAP_POLL", gt=0)
    # Incoming email: bytes read (and stored raw) per message, MIME parts read, and how long
    # reading one message may take in the worker thread before it is recorded as failed.
    mail_max_bytes: int = Field(default=10 * 1024 * 1024, alias="RELAIS_MAIL_MAX_BYTES", gt=0)
    # The authserv-id(s) of our own receiving mail server (comma-separated), as it writes
    # them in Authentication-Results (RFC 8601). Only its DMARC/DKIM/SPF verdict is trusted;
    # unset, no email is verified, so none may acknowledge, refuse or complete a need.
    mail_authserv_id: str | None = Field(default=None, alias="MAIL_AUTHSERV_ID")
    # Relayed messages one firm may send a minute before the next ones wait a minute.
    relay_per_minute: int = Field(default=6, alias="RELAIS_RELAY_PER_MINUTE", ge=1, le=120)
    mail_max_parts: int = Field(default=250, alias="RELAIS_MAIL_MAX_PARTS", ge=1)
    mail_parse_timeout: float = Field(default=30.0, alias="RELAIS_MAIL_PARSE_TIMEOUT", gt=0)

    # Limits against abuse (bot/services/limits.py); 0 turns one off. Per Telegram user:
    # updates a minute (then one notice, and silence until the minute is over), questions
    # to the knowledge base a minute, needs filed a day. The chefs de projet are exempt.
    limit_messages_per_minute: int = Field(default=20, alias="RELAIS_LIMIT_MESSAGES_PER_MINUTE",
                                           ge=0, le=10_000)
    limit_questions_per_minute: int = Field(default=10,
                                            alias="RELAIS_LIMIT_QUESTIONS_PER_MINUTE",
                                            ge=0, le=10_000)
    limit_needs_per_day: int = Field(default=3, alias="RELAIS_LIMIT_NEEDS_PER_DAY", ge=0,
                                     le=10_000)
    # Updates of one chat waiting to be handled; more are dropped unread (a flood).
    limit_chat_queue: int = Field(default=30, alias="RELAIS_LIMIT_CHAT_QUEUE", ge=1, le=10_000)
    # Email: needs created an hour per sender and overall; automatic replies a day (per
    # address for a new email, per thread for an answer); emails an hour from one sender
    # in one thread before the next ones are set aside (a mail loop).
    limit_mail_needs_per_hour: int = Field(default=3, alias="RELAIS_LIMIT_MAIL_NEEDS_PER_HOUR",
                                           ge=0, le=10_000)
    limit_mail_needs_per_hour_total: int = Field(
        default=20, alias="RELAIS_LIMIT_MAIL_NEEDS_PER_HOUR_TOTAL", ge=0, le=100_000)
    limit_mail_replies_per_day: int = Field(default=1, alias="RELAIS_LIMIT_MAIL_REPLIES_PER_DAY",
                                            ge=0, le=1000)
    limit_mail_thread_per_hour: int = Field(default=5, alias="RELAIS_LIMIT_MAIL_THREAD_PER_HOUR",
                                            ge=0, le=10_000)
    # New needs from emails reach the chefs de projet at most once per territory in this
    # many minutes (the first at once; the next ones listed in one notice); 0: each at once.
    limit_mail_notice_minutes: int = Field(default=60, alias="RELAIS_LIMIT_MAIL_NOTICE_MINUTES",
                                           ge=0, le=24 * 60)

    # Meeting reminders before a confirmed meeting ("24h,2h"; "30m", "1d" also read).
    reminder_offsets: str = Field(default="24h,2h", alias="REMINDER_OFFSETS")
    # Seconds between two looks at the reminder table (a due reminder also wakes the bot).
    reminder_tick: float = Field(default=5.0, alias="REMINDER_TICK", gt=0, le=300)

    # Follow-up: how often to look for late acknowledgements and long-open needs (seconds),
    # when to ask the animator to close a need (days), and when a late partner is escalated
    # (this many times its ack_days).
    followup_tick: float = Field(default=300.0, alias="RELAIS_FOLLOWUP_TICK", gt=0)
    stale_days: int = Field(default=30, alias="RELAIS_STALE_DAYS", ge=1, le=365)
    escalate_factor: int = Field(default=2, alias="RELAIS_ESCALATE_FACTOR", ge=1, le=10)

    @field_validator("reminder_offsets")
    @classmethod
    def _readable_offsets(cls, value: str) -> str:
        parse_offsets(value)  # raises ValueError with a French message
        return value

    @field_validator("relais_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        ZoneInfo(value)  # raises on an unknown zone, which pydantic reports with the field name
        return value

    @property
    def authserv_ids(self) -> frozenset[str]:
        """The trusted authserv-ids of `MAIL_AUTHSERV_ID`, lowercased (empty when unset)."""
        return frozenset(part.strip().lower() for part in (self.mail_authserv_id or "").split(",")
                         if part.strip())

    @property
    def tz(self) -> ZoneInfo:
        """The timezone people live in (storage stays in UTC)."""
        return ZoneInfo(self.relais_timezone)


def load_settings(**overrides: object) -> Settings:
    """Read the settings, letting callers (CLI flags, tests) override single values."""
    return Settings(**overrides)  # type: ignore[arg-type]
