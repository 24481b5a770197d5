"""Firm lookups against a local double of the API Recherche d'entreprises (no internet)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.commands.firm import firm_lookup_command
from bot.directory import (
    DEFAULT_BASE_URL,
    FirmDirectory,
    LookupFailed,
    LookupUnavailable,
    RechercheEntreprisesClient,
)
from knowledge.firms import FirmRecord, load_opco_table
from storage.db import Database
from testing.clock import FakeClock
from testing.directory import (
    ARTISAN_SIREN,
    HEAD_SIRET,
    MASKED_SIRET,
    MIXED_SIRET,
    NOT_FOUND_SIRET,
    PARTIAL_SIRET,
    PLANT_SIRET,
    SERVER_ERROR,
    SIREN,
    STUB_SIRET,
    RechercheDouble,
    Reply,
)


class Monotonic:
    """A monotonic clock whose sleep only moves time forward (tests never really wait)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Record the wait and jump over it."""
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
async def double() -> AsyncIterator[RechercheDouble]:
    """The API double on a free loopback port."""
    server = RechercheDouble()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def mono() -> Monotonic:
    """The client's throttle/breaker clock."""
    return Monotonic()


@pytest.fixture
async def client(
    double: RechercheDouble, mono: Monotonic
) -> AsyncIterator[RechercheEntreprisesClient]:
    """A client pointed at the double, with the controlled clock and a short timeout."""
    # 2 s, not less: on a loaded machine a loopback answer took over 0.3 s (a flaky
    # "délai dépassé"); the slow answers scripted below take 5 s.
    api = RechercheEntreprisesClient(double.base_url, timeout=2.0, clock=mono, sleep=mono.sleep)
    try:
        yield api
    finally:
        await api.aclose()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A fresh SQLite database."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'firms.db'}")
    await database.create_all()
    try:
        yield database
    finally:
        await database.dispose()


async def test_siret_reads_the_establishment_not_the_head_office(
    client: RechercheEntreprisesClient, double: RechercheDouble
) -> None:
    record = await client.by_siret("732 829 320 00025")
    assert record is not None
    assert record.siret == PLANT_SIRET and record.siren == SIREN
    assert record.name == "FONDERIE DU CHAROLAIS (FDC)"
    # The plant, not the Lyon head office.
    assert (record.commune_insee, record.commune_name, record.postcode) == (
        "71342", "PARAY-LE-MONIAL", "71600"
    )
    assert record.naf == "24.51Z"
    assert record.is_head_office is False
    assert record.idccs == ("3248",) and record.opco == "OPCO 2i"
    # Firm-level headcount band, the establishment's kept beside it.
    assert record.size_band == "22" and record.size_label == "100 à 199 salariés"
    assert record.establishment_size_band == "21"
    assert record.artisan is False
    assert record.diffusible is True
    assert record.fetched_at.tzinfo is not None and record.source.endswith("api.gouv.fr")
    [request] = double.requests
    assert request["query"] == {"q": PLANT_SIRET}
    assert request["headers"]["User-Agent"].startswith("Relais/")


async def test_head_office_siret(client: RechercheEntreprisesClient) -> None:
    record = await client.by_siret(HEAD_SIRET)
    assert record is not None and record.is_head_office is True
    assert record.commune_insee == "69382" and record.idccs == ("1486",)
    assert record.opco == "Atlas"


async def test_siren_gives_the_head_office_and_all_idccs(
    client: RechercheEntreprisesClient,
) -> None:
    record = await client.by_siren(SIREN)
    assert record is not None
    assert record.siret == HEAD_SIRET and record.is_head_office is True
    assert record.commune_insee == "69382"
    assert record.idccs == ("1486", "3248")
    # Two IDCCs, two OPCOs: ambiguous, a person has to ask.
    assert record.opco is None


async def test_artisan_with_several_idccs_of_one_opco(client: RechercheEntreprisesClient) -> None:
    record = await client.by_siren(ARTISAN_SIREN)
    assert record is not None
    assert record.artisan is True
    assert record.idccs == ("1596", "2420", "2609") and record.opco == "Constructys"
    assert record.size_label == "6 à 9 salariés"


async def test_establishment_idccs_with_different_opcos(
    client: RechercheEntreprisesClient,
) -> None:
    record = await client.by_siret(MIXED_SIRET)
    assert record is not None
    assert record.idccs == ("44", "1486") and record.opco is None


@pytest.mark.parametrize("siret", [NOT_FOUND_SIRET, STUB_SIRET])
async def test_not_found_and_stub(client: RechercheEntreprisesClient, siret: str) -> None:
    assert await client.by_siret(siret) is None


async def test_masked_name_is_not_found(client: RechercheEntreprisesClient) -> None:
    assert await client.by_siret(MASKED_SIRET) is None


async def test_partial_diffusion_keeps_visible_facts(client: RechercheEntreprisesClient) -> None:
    record = await client.by_siret(PARTIAL_SIRET)
    assert record is not None
    assert record.diffusible is False
    assert record.name == "CHAUDRONNERIE MONTCELLIENNE"
    assert record.commune_insee == "71306" and record.size_band == "11"
    # 9999 = no collective agreement: no OPCO to derive.
    assert record.idccs == ("9999",) and record.opco is None


async def test_invalid_numbers_are_refused_before_calling(
    client: RechercheEntreprisesClient, double: RechercheDouble
) -> None:
    with pytest.raises(ValueError):
        await client.by_siret("73282932000026")
    with pytest.raises(ValueError):
        await client.by_siren("123")
    assert double.requests == []


async def test_search_by_name_in_a_commune(
    client: RechercheEntreprisesClient, double: RechercheDouble
) -> None:
    records = await client.search("fonderie charolais", "71342")
    assert [r.siret for r in records] == [PLANT_SIRET]
    assert double.requests[0]["query"] == {
        "q": "fonderie charolais", "per_page": "5", "page": "1", "code_commune": "71342"
    }
    assert await client.search("fonderie", "81069") == []
    [anywhere] = await client.search("couvertures")
    assert anywhere.siren == ARTISAN_SIREN and anywhere.is_head_office is True
    with pytest.raises(ValueError):
        await client.search("ab", None)


async def test_short_retry_after_is_honoured_once(
    client: RechercheEntreprisesClient, double: RechercheDouble, mono: Monotonic
) -> None:
    double.script(Reply(429, {"erreur": "Trop de requêtes"}, {"Retry-After": "1"}))
    record = await client.by_siret(PLANT_SIRET)
    assert record is not None and len(double.requests) == 2
    assert 1.0 in mono.slept


async def test_long_retry_after_gives_up_and_blocks(
    client: RechercheEntreprisesClient, double: RechercheDouble, mono: Monotonic
) -> None:
    double.script(Reply(429, {"erreur": "Trop de requêtes"}, {"Retry-After": "30"}))
    with pytest.raises(LookupUnavailable):
        await client.by_siret(PLANT_SIRET)
    assert len(double.requests) == 1 and 30 not in mono.slept
    # Every call waits out the Retry-After, without touching the network.
    with pytest.raises(LookupUnavailable):
        await client.by_siret(PLANT_SIRET)
    assert len(double.requests) == 1
    mono.now += 31
    assert await client.by_siret(PLANT_SIRET) is not None


async def test_server_error_is_unavailable(
    client: RechercheEntreprisesClient, double: RechercheDouble
) -> None:
    double.script(Reply(500, SERVER_ERROR))
    with pytest.raises(LookupUnavailable, match="erreur inattendue") as info:
        await client.by_siret(PLANT_SIRET)
    assert isinstance(info.value, ConnectionError) and isinstance(info.value, LookupFailed)


async def test_bad_request_is_a_failure_not_an_outage(
    client: RechercheEntreprisesClient, double: RechercheDouble
) -> None:
    double.script(*[Reply(400, {"erreur": "Veuillez indiquer au moins un paramètre."})] * 4)
    for _ in range(4):
        with pytest.raises(LookupFailed) as info:
            await client.by_siret(PLANT_SIRET)
        assert not isinstance(info.value, LookupUnavailable)
    assert client.state == "closed"


async def test_slow_answer_times_out(
    client: RechercheEntreprisesClient, double: RechercheDouble
) -> None:
    # The answer would come after 5 s, and it is a valid empty one: only the client's own
    # 2 s timeout can turn it into this error.
    double.script(Reply(200, {"results": []}, delay=5))
    with pytest.raises(LookupUnavailable, match="délai"):
        await client.by_siret(PLANT_SIRET)


async def test_circuit_breaker_opens_then_recovers(
    client: RechercheEntreprisesClient, double: RechercheDouble, mono: Monotonic
) -> None:
    double.script(Reply(500, SERVER_ERROR), Reply(503, SERVER_ERROR), Reply(delay=5))
    for _ in range(3):
        with pytest.raises(LookupUnavailable):
            await client.by_siret(PLANT_SIRET)
    assert client.state == "open" and len(double.requests) == 3
    with pytest.raises(LookupUnavailable, match="suspendus"):
        await client.by_siret(PLANT_SIRET)
    assert len(double.requests) == 3
    # After the cooldown one probe goes through; a failure reopens at once.
    mono.now += 60
    assert client.state == "half-open"
    double.script(Reply(500, SERVER_ERROR))
    with pytest.raises(LookupUnavailable):
        await client.by_siret(PLANT_SIRET)
    assert client.state == "open" and len(double.requests) == 4
    mono.now += 60
    assert await client.by_siret(PLANT_SIRET) is not None
    assert client.state == "closed" and len(double.requests) == 5


async def test_half_open_lets_a_single_probe_through(
    client: RechercheEntreprisesClient, double: RechercheDouble, mono: Monotonic
) -> None:
    double.script(*[Reply(500, SERVER_ERROR)] * 3)
    for _ in range(3):
        with pytest.raises(LookupUnavailable):
            await client.by_siret(PLANT_SIRET)
    mono.now += 61
    double.script(Reply(200, {"results": []}, delay=0.1))
    results = await asyncio.gather(
        client.by_siret(PLANT_SIRET), client.by_siret(PLANT_SIRET), return_exceptions=True
    )
    assert results.count(None) == 1
    assert sum(isinstance(r, LookupUnavailable) for r in results) == 1
    assert client.state == "closed"


async def test_throttle_spaces_calls(
    client: RechercheEntreprisesClient, double: RechercheDouble, mono: Monotonic
) -> None:
    start = mono.now
    for _ in range(9):
        await client.by_siret(NOT_FOUND_SIRET)
    # 4 per second with no burst: 8 gaps of 0.25 s, far under the API's 7/s.
    assert mono.now - start == pytest.approx(2.0)
    assert len(double.requests) == 9


def test_default_url_and_opco_table() -> None:
    assert DEFAULT_BASE_URL == "https://recherche-entreprises.api.gouv.fr"
    table = load_opco_table()
    assert table.opco_for(("3248",)) == "OPCO 2i"
    assert table.opco_for(("0044",)) == "OPCO 2i"
    assert table.opco_for(("292",)) == "OPCO 2i"
    assert table.opco_for(("1747",)) == "OCAPIAT"
    assert table.opco_for(("9999",)) is None
    assert table.opco_for(("4242",)) is None
    assert table.valid_as_of and table.source


async def test_cache_hit_makes_no_second_call(
    client: RechercheEntreprisesClient, double: RechercheDouble, db: Database
) -> None:
    directory = FirmDirectory(client, db)
    first = await directory.lookup_siret_outcome(PLANT_SIRET)
    second = await directory.lookup_siret_outcome(PLANT_SIRET)
    assert (first.status, second.status) == ("api", "cache")
    assert second.record == first.record
    assert len(double.requests) == 1
    # A not-found answer is cached too.
    assert await directory.lookup_siret(NOT_FOUND_SIRET) is None
    assert await directory.lookup_siret(NOT_FOUND_SIRET) is None
    assert len(double.requests) == 2


async def test_concurrent_lookups_share_one_call(
    client: RechercheEntreprisesClient, double: RechercheDouble, db: Database
) -> None:
    directory = FirmDirectory(client, db)
    records = await asyncio.gather(*(directory.lookup_siret(PLANT_SIRET) for _ in range(5)))
    assert all(r is not None and r.siret == PLANT_SIRET for r in records)
    assert len(double.requests) == 1


async def test_ttl_expiry_and_live(
    client: RechercheEntreprisesClient, double: RechercheDouble, db: Database, clock: FakeClock
) -> None:
    directory = FirmDirectory(client, db, ttl=timedelta(days=30), now=clock)
    await directory.lookup_siret(PLANT_SIRET)
    clock.advance(days=29)
    await directory.lookup_siret(PLANT_SIRET)
    assert len(double.requests) == 1
    clock.advance(days=2)
    record = await directory.lookup_siret(PLANT_SIRET)
    assert len(double.requests) == 2 and record is not None
    assert record.fetched_at == clock.now
    await directory.lookup_siret(PLANT_SIRET, live=True)
    assert len(double.requests) == 3
    # Not found expires after a day: the number may just have been created.
    await directory.lookup_siret(NOT_FOUND_SIRET)
    clock.advance(hours=25)
    await directory.lookup_siret(NOT_FOUND_SIRET)
    assert len(double.requests) == 5


async def test_directory_never_raises(
    client: RechercheEntreprisesClient, double: RechercheDouble, db: Database, clock: FakeClock
) -> None:
    directory = FirmDirectory(client, db, now=clock)
    double.script(Reply(500, SERVER_ERROR))
    outcome = await directory.lookup_siret_outcome(PLANT_SIRET)
    assert outcome.record is None and outcome.status == "unavailable"
    assert await directory.lookup_siret("not a siret") is None
    # Expired cache + API down: the old facts are returned rather than nothing.
    assert await directory.lookup_siret(PLANT_SIRET) is not None
    clock.advance(days=40)
    double.script(Reply(delay=5))
    stale = await directory.lookup_siret_outcome(PLANT_SIRET)
    assert stale.status == "stale" and stale.record is not None


async def test_record_json_round_trip(client: RechercheEntreprisesClient) -> None:
    record = await client.by_siret(PLANT_SIRET)
    assert record is not None
    assert FirmRecord.from_json(json.loads(json.dumps(record.to_json()))) == record
    assert record.facts().idcc == ("3248",) and record.facts().size_band == "22"


def test_cli_lookup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    loop = asyncio.new_event_loop()
    server = RechercheDouble()
    loop.run_until_complete(server.start())
    # The CLI runs its own event loop: serve the double from a thread meanwhile.
    import threading

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("RECHERCHE_ENTREPRISES_URL", server.base_url)
        assert firm_lookup_command(PLANT_SIRET, as_json=False, live=False) == 0
        text = capsys.readouterr().out
        assert "PARAY-LE-MONIAL — INSEE 71342" in text and "OPCO : OPCO 2i" in text
        assert firm_lookup_command(PLANT_SIRET, as_json=True, live=False) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["status"] == "cache" and data["record"]["commune_insee"] == "71342"
        assert firm_lookup_command(NOT_FOUND_SIRET, as_json=False, live=True) == 1
        assert firm_lookup_command("123", as_json=False, live=False) == 2
        assert len(server.requests) == 2
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


async def test_cancelled_probe_does_not_jam_the_breaker(
    client: RechercheEntreprisesClient, double: RechercheDouble, mono: Monotonic
) -> None:
    double.script(*[Reply(500, SERVER_ERROR)] * 3, Reply(delay=5))
    for _ in range(3):
        with pytest.raises(LookupUnavailable):
            await client.by_siret(PLANT_SIRET)
    mono.now += 60
    probe = asyncio.create_task(client.by_siret(PLANT_SIRET))
    async with asyncio.timeout(5):
        await double.wait_for_requests(4)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert await client.by_siret(PLANT_SIRET) is not None
    assert client.state == "closed"


def test_retry_after_as_http_date() -> None:
    from email.utils import format_datetime

    from bot.directory import _retry_after_seconds
    from storage.types import utcnow

    later = format_datetime(utcnow() + timedelta(seconds=90), usegmt=True)
    assert 85 <= (_retry_after_seconds(later) or 0) <= 90
    assert _retry_after_seconds("2") == 2.0
    assert _retry_after_seconds("n'importe quoi") is None
    assert _retry_after_seconds(None) is None
