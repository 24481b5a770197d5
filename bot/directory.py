"""The company directory: a polite client of the public "API Recherche d'entreprises".

The API is free and keyless but limited to 7 requests/s per IP, and its load balancer blocks
IPs that keep producing 429s for days. So the client throttles well below the limit, honours
`Retry-After`, and stops calling for a while after repeated failures (circuit breaker).
`FirmDirectory` adds a database cache so a SIRET is asked at most once per TTL. Reading one
record of the API's answer is pure and lives in `knowledge.firms`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx
from sqlmodel import Session
from stdnum.fr import siren as stdnum_siren
from stdnum.fr import siret as stdnum_siret

from knowledge.firms import FirmRecord, OpcoTable, record_from_result
from storage.db import Database
from storage.models import FirmLookup
from storage.types import utcnow

__all__ = [
    "DEFAULT_BASE_URL",
    "FirmDirectory",
    "LookupFailed",
    "LookupOutcome",
    "LookupUnavailable",
    "RechercheEntreprisesClient",
]

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://recherche-entreprises.api.gouv.fr"
USER_AGENT = "Relais/0.1 (assistant Territoires d'industrie; recherche de faits publics par SIRET)"

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class LookupFailed(Exception):
    """The directory could not answer this lookup (bad request, unexpected answer)."""


class LookupUnavailable(LookupFailed, ConnectionError):
    """The directory is unreachable, overloaded, or we chose not to call it right now."""


def _compact_digits(value: str) -> str:
    return "".join(value.split()).replace(".", "")


def _retry_after_seconds(header: str | None) -> float | None:
    """`Retry-After` as seconds: either a number or an HTTP date."""
    if not header:
        return None
    header = header.strip()
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - utcnow()).total_seconds())


def default_base_url() -> str:
    """`RECHERCHE_ENTREPRISES_URL` from the environment, else the public API."""
    return os.environ.get("RECHERCHE_ENTREPRISES_URL") or DEFAULT_BASE_URL


class RechercheEntreprisesClient:
    """Async client for `GET /search`, throttled, with `Retry-After` and a circuit breaker."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: float = 3.0,
        rate: float = 4.0,
        burst: int = 1,
        breaker_threshold: int = 3,
        breaker_cooldown: float = 60.0,
        max_retry_wait: float = 2.0,
        user_agent: str = USER_AGENT,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        opco_table: OpcoTable | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = (base_url or default_base_url()).rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": user_agent, "Accept": "application/json"},
            transport=transport,
        )
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._last_refill = clock()
        self._throttle_lock = asyncio.Lock()
        self._threshold = breaker_threshold
        self._cooldown = breaker_cooldown
        self._max_retry_wait = max_retry_wait
        self._failures = 0
        self._open_until: float | None = None
        self._probing = False
        # A long Retry-After applies to every call, not only the one that got it.
        self._blocked_until = float("-inf")
        self._opco_table = opco_table
        self.calls = 0

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    async def __aenter__(self) -> RechercheEntreprisesClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    @property
    def state(self) -> Literal["closed", "open", "half-open"]:
        """The circuit breaker's state."""
        if self._open_until is None:
            return "closed"
        return "open" if self._clock() < self._open_until else "half-open"

    async def by_siret(self, siret: str) -> FirmRecord | None:
        """The establishment `siret`; None when unknown, a stub, or its name is masked."""
        siret = _compact_digits(siret)
        if not stdnum_siret.is_valid(siret):
            raise ValueError(f"SIRET invalide : {siret!r}")
        payload = await self._search({"q": siret})
        results = payload.get("results") or []
        if not results:
            return None
        return record_from_result(
            results[0], siret=siret, fetched_at=utcnow(), opco_table=self._opco_table
        )

    async def by_siren(self, siren: str) -> FirmRecord | None:
        """The firm `siren`, with its head office's facts; None when unknown or masked."""
        siren = _compact_digits(siren)
        if not stdnum_siren.is_valid(siren):
            raise ValueError(f"SIREN invalide : {siren!r}")
        payload = await self._search({"q": siren})
        results = [r for r in payload.get("results") or [] if r.get("siren") == siren]
        if not results:
            return None
        return record_from_result(
            results[0], siret=None, fetched_at=utcnow(), opco_table=self._opco_table
        )

    async def search(
        self, name: str, commune_insee: str | None = None, limit: int = 5
    ) -> list[FirmRecord]:
        """Firms matching `name`, in `commune_insee` if given (its establishment there)."""
        name = " ".join(name.split())
        if len(name) < 3 and commune_insee is None:
            raise ValueError("3 caractères minimum pour une recherche par nom")
        params = {"q": name, "per_page": str(max(1, min(limit, 25))), "page": "1"}
        if commune_insee:
            params["code_commune"] = commune_insee
        payload = await self._search(params)
        now = utcnow()
        records = []
        for result in payload.get("results") or []:
            matching = result.get("matching_etablissements") or []
            siret = None
            if commune_insee:
                here = [e for e in matching if e.get("commune") == commune_insee]
                siret = here[0].get("siret") if here else None
            record = record_from_result(
                result, siret=siret, fetched_at=now, opco_table=self._opco_table
            )
            if record is not None:
                records.append(record)
        return records[:limit]

    async def _search(self, params: dict[str, str]) -> dict[str, Any]:
        """One `/search` call with at most one short `Retry-After` retry."""
        for attempt in range(2):
            # The retry already waited out Retry-After (asyncio may wake a hair early).
            self._before_call(retrying=attempt > 0)
            try:
                await self._throttle()
                self.calls += 1
                response = await self._http.get("/search", params=params)
            except asyncio.CancelledError:
                # A cancelled probe must not leave the breaker half-open forever.
                self._probing = False
                raise
            except httpx.TimeoutException as exc:
                self._on_failure()
                raise LookupUnavailable("annuaire des entreprises : délai dépassé") from exc
            except httpx.HTTPError as exc:
                self._on_failure()
                raise LookupUnavailable(f"annuaire des entreprises injoignable : {exc}") from exc
            if response.status_code == 429:
                self._on_failure()
                wait = _retry_after_seconds(response.headers.get("Retry-After"))
                if wait is not None:
                    self._blocked_until = max(self._blocked_until, self._clock() + wait)
                if attempt == 0 and wait is not None and wait <= self._max_retry_wait:
                    logger.info("recherche-entreprises 429, retrying in %.1fs", wait)
                    await self._sleep(wait)
                    continue
                raise LookupUnavailable("annuaire des entreprises : trop de requêtes (429)")
            if response.status_code >= 500:
                self._on_failure()
                raise LookupUnavailable(
                    f"annuaire des entreprises : erreur {response.status_code} "
                    f"({_error_text(response)})"
                )
            # The server answered: whatever it said, it is up.
            self._on_success()
            if response.status_code != 200:
                raise LookupFailed(
                    f"annuaire des entreprises : erreur {response.status_code} "
                    f"({_error_text(response)})"
                )
            try:
                data = response.json()
            except ValueError as exc:
                raise LookupFailed("annuaire des entreprises : réponse illisible") from exc
            if not isinstance(data, dict):
                raise LookupFailed("annuaire des entreprises : réponse inattendue")
            return data
        raise AssertionError("unreachable")  # pragma: no cover

    def _before_call(self, *, retrying: bool = False) -> None:
        """Refuse to call while blocked by Retry-After or while the breaker is open."""
        now = self._clock()
        if not retrying and now < self._blocked_until:
            raise LookupUnavailable("annuaire des entreprises : attente demandée (Retry-After)")
        if self._open_until is None:
            return
        if now < self._open_until:
            raise LookupUnavailable("annuaire des entreprises : indisponible, appels suspendus")
        # Half-open: a single probe goes through; the others wait for its verdict.
        if self._probing:
            raise LookupUnavailable("annuaire des entreprises : test de reprise en cours")
        self._probing = True

    def _on_success(self) -> None:
        self._failures = 0
        self._open_until = None
        self._probing = False

    def _on_failure(self) -> None:
        self._failures += 1
        half_open = self._probing
        self._probing = False
        if half_open or self._failures >= self._threshold:
            if self._open_until is None or half_open:
                logger.warning(
                    "recherche-entreprises: %d failures, pausing calls for %.0fs",
                    self._failures, self._cooldown,
                )
            self._open_until = self._clock() + self._cooldown

    async def _throttle(self) -> None:
        """Token bucket: at most `rate` calls per second, `burst` at once."""
        async with self._throttle_lock:
            self._refill()
            if self._tokens < 1.0:
                await self._sleep((1.0 - self._tokens) / self._rate)
                self._refill()
            self._tokens -= 1.0

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._last_refill)
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        self._last_refill = now


def _error_text(response: httpx.Response) -> str:
    """The API's French `erreur` message, or a short excerpt of the body."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(data, dict) and isinstance(data.get("erreur"), str):
        return data["erreur"]
    return str(data)[:200]


@dataclass(frozen=True, slots=True)
class LookupOutcome:
    """A lookup's result and where it came from (for the CLI and logs)."""

    record: FirmRecord | None
    # cache | api | stale (cached, expired, API failing) | not_found | unavailable | invalid
    status: str
    error: str | None = None
    fetched_at: datetime | None = field(default=None)


def _default_ttl() -> timedelta:
    return timedelta(days=float(os.environ.get("RELAIS_FIRM_CACHE_DAYS", "30")))


class FirmDirectory:
    """The API client behind a database cache; lookups never raise to the caller."""

    def __init__(
        self,
        client: RechercheEntreprisesClient,
        db: Database,
        *,
        ttl: timedelta | None = None,
        not_found_ttl: timedelta = timedelta(days=1),
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.client = client
        self.db = db
        self.ttl = ttl if ttl is not None else _default_ttl()
        # Short: a brand-new SIRET appears after the API's daily index rebuild.
        self.not_found_ttl = not_found_ttl
        self._now = now
        self._inflight: dict[str, asyncio.Future[LookupOutcome]] = {}

    async def lookup_siret(self, siret: str, *, live: bool = False) -> FirmRecord | None:
        """The establishment's facts, from the cache or the API; None on any failure."""
        return (await self.lookup_siret_outcome(siret, live=live)).record

    async def lookup_siret_outcome(self, siret: str, *, live: bool = False) -> LookupOutcome:
        """Like `lookup_siret`, saying where the answer came from; never raises."""
        siret = _compact_digits(siret)
        if not stdnum_siret.is_valid(siret):
            return LookupOutcome(None, "invalid", "SIRET invalide")
        return await self._shared(f"siret:{siret}", siret, live, self.client.by_siret)

    async def lookup_siren_outcome(self, siren: str, *, live: bool = False) -> LookupOutcome:
        """The legal unit and its head office for a SIREN; never raises."""
        siren = _compact_digits(siren)
        if not stdnum_siren.is_valid(siren):
            return LookupOutcome(None, "invalid", "SIREN invalide")
        return await self._shared(f"siren:{siren}", siren, live, self.client.by_siren)

    async def lookup_number(self, number: str) -> LookupOutcome:
        """A SIRET (14 digits) or SIREN (9 digits) as the firm typed it; never raises."""
        digits = _compact_digits(number)
        if len(digits) == 9:
            return await self.lookup_siren_outcome(digits)
        return await self.lookup_siret_outcome(digits)

    async def search(
        self, name: str, commune_insee: str | None = None, limit: int = 5
    ) -> list[FirmRecord]:
        """Firms by name (and commune), for the firm to pick; [] on any failure, never raises."""
        try:
            return await self.client.search(name, commune_insee, limit=limit)
        except (LookupFailed, ValueError) as exc:
            logger.warning("firm search failed: %s", exc)
        except Exception:  # the conversation goes on without the directory
            logger.exception("firm search failed")
        return []

    async def _shared(
        self, key: str, number: str, live: bool,
        fetch: Callable[[str], Awaitable[FirmRecord | None]],
    ) -> LookupOutcome:
        running = self._inflight.get(key)
        if running is not None:
            # Concurrent lookups of one number share a single API call.
            return await asyncio.shield(running)
        future: asyncio.Future[LookupOutcome] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            outcome = await self._lookup(key, number, live, fetch)
        except Exception as exc:  # never raise to the conversation
            logger.exception("firm lookup %s failed", key)
            outcome = LookupOutcome(None, "unavailable", str(exc))
        except BaseException:
            # Cancelled: the callers sharing this lookup must not wait forever.
            future.set_result(LookupOutcome(None, "unavailable", "recherche interrompue"))
            raise
        finally:
            self._inflight.pop(key, None)
        future.set_result(outcome)
        return outcome

    async def _lookup(
        self, key: str, number: str, live: bool,
        fetch: Callable[[str], Awaitable[FirmRecord | None]],
    ) -> LookupOutcome:
        cached = await self._read(key)
        now = self._now()
        if cached is not None and not live:
            ttl = self.ttl if cached.found else self.not_found_ttl
            if now - cached.fetched_at < ttl:
                record = FirmRecord.from_json(cached.payload) if cached.payload else None
                return LookupOutcome(
                    record, "cache" if record else "not_found", fetched_at=cached.fetched_at
                )
        try:
            record = await fetch(number)
        except LookupFailed as exc:
            logger.warning("firm lookup %s: %s", key, exc)
            if cached is not None and cached.payload:
                # Stale public facts beat asking the person again.
                return LookupOutcome(
                    FirmRecord.from_json(cached.payload), "stale", str(exc), cached.fetched_at
                )
            return LookupOutcome(None, "unavailable", str(exc))
        if record is not None:
            record = replace(record, fetched_at=now)
        await self._write(key, record, now)
        return LookupOutcome(record, "api" if record else "not_found", fetched_at=now)

    async def _read(self, key: str) -> FirmLookup | None:
        def work(session: Session) -> FirmLookup | None:
            return session.get(FirmLookup, key)

        return await self.db.run(work)

    async def _write(self, key: str, record: FirmRecord | None, now: datetime) -> None:
        def work(session: Session) -> None:
            row = session.get(FirmLookup, key) or FirmLookup(key=key)
            row.found = record is not None
            row.payload = record.to_json() if record is not None else None
            row.fetched_at = now
            session.add(row)

        await self.db.run(work)

    async def forget(self, siret: str) -> None:
        """Drop a SIRET from the cache (erasure of a sole trader's data)."""
        key = f"siret:{_compact_digits(siret)}"

        def work(session: Session) -> None:
            row = session.get(FirmLookup, key)
            if row is not None:
                session.delete(row)

        await self.db.run(work)
