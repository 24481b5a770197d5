"""The `relais` command line, run as a user would (a real process)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.runtime import build_application, build_services
from testing.botapi import LocalBotAPI
from testing.clock import FakeClock
from tests.conftest import RunningBot, make_settings


def relais(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
           stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m bot.cli …` with a clean environment (no token unless given)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True,
        env={**base, **(env or {})}, cwd=cwd, input=stdin, timeout=120, check=False,
    )


@pytest.mark.slow
def test_run_without_token_says_so_in_one_line(tmp_path: Path) -> None:
    result = relais("run", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "TELEGRAM_BOT_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_needs_lists_stored_needs_as_json(relais_done: tuple[RunningBot, str]) -> None:
    _bot, url = relais_done
    result = relais("needs", "--json", env={"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)
    assert row["reference"] == "TI-2026-0001"
    assert (row["commune_insee"], row["commune_name"]) == ("71342", "Paray-le-Monial")
    assert (row["epci_siren"], row["epci_name"]) == ("200071884", "CC Le Grand Charolais")
    assert row["theme"] == "recrutement" and row["status"] == "routed"
    assert row["created_at"].endswith("+00:00")
    text = relais("needs", env={"DATABASE_URL": url}).stdout
    assert "TI-2026-0001" in text and "Paray-le-Monial" in text and "28/11/2026 10:00" in text
    # People read the status and the theme in French, not the stored keys.
    assert "transmise" in text and "Recrutement" in text
    assert "routed" not in text and "recrutement" not in text


def test_export_writes_french_headers_and_labels(relais_done: tuple[RunningBot, str],
                                                 tmp_path: Path) -> None:
    _bot, url = relais_done
    target = tmp_path / "demandes.csv"
    result = relais("export", "--output", str(target), env={"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"1 demande exportée dans {target}."
    header, row = target.read_bytes().decode("utf-8-sig").splitlines()
    assert header.split(";")[:4] == ["référence", "statut", "thème", "urgence"]
    cells = row.split(";")
    assert cells[:2] == ["TI-2026-0001", "transmise"] and cells[11] == "Telegram"


@pytest.mark.slow
def test_chat_works_in_a_terminal_without_network_or_token(tmp_path: Path) -> None:
    # Accept the notice, give a name, then quit (end of input).
    result = relais("chat", cwd=tmp_path, stdin="1\nMenuiserie Test\n",
                    env={"RELAIS_RATE_LIMIT": "false"})
    assert result.returncode == 0, result.stderr
    assert "Acceptez-vous ces conditions ?" in result.stdout
    assert "[1] J'accepte" in result.stdout
    assert "Quel est le numéro SIRET" in result.stdout


@pytest.mark.slow
async def test_flood_limiter_spaces_messages(api: LocalBotAPI, tmp_path: Path,
                                             clock: FakeClock) -> None:
    settings = make_settings(api, tmp_path / "db.sqlite", RELAIS_RATE_LIMIT=True)
    services = await build_services(settings, clock=clock)
    application = build_application(services)
    await application.initialize()
    users = [api.user(8000 + i) for i in range(45)]
    for user in users:
        user.started = True
    start = time.monotonic()
    await asyncio.gather(*(application.bot.send_message(u.chat_id, "x") for u in users))
    elapsed = time.monotonic() - start
    await application.shutdown()
    await services.db.dispose()
    # 45 messages at 30 per second overall cannot all leave within the first second.
    assert elapsed >= 0.4
    assert all(u.messages[-1].plain == "x" for u in users)
