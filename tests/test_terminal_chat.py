"""`relais chat` run twice on one database, as a returning visitor would (real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# End-to-end through real processes and servers: not in the fast lane.
pytestmark = pytest.mark.slow

# What a log line looks like, whatever the logger (and a crash's first line).
LOG_MARKERS = (" INFO ", " WARNING ", " ERROR ", "Traceback", "apscheduler", "telegram.ext")

NAME_QUESTION = "Quel est le nom de votre entreprise ?"
COMMUNE_QUESTION = "Dans quelle commune se trouve l'établissement ?"


def chat(cwd: Path, stdin: str) -> subprocess.CompletedProcess[str]:
    """Run `relais chat` in ``cwd`` (its database is ./data/relais.db) with this input."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_"))}
    env["RELAIS_RATE_LIMIT"] = "false"
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "chat"], capture_output=True, text=True, env=env,
        cwd=cwd, input=stdin, timeout=120, check=False,
    )


def assert_only_the_conversation(result: subprocess.CompletedProcess[str]) -> None:
    """The process ended well and printed no log line, on stdout or stderr."""
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    leaked = [line for line in result.stdout.splitlines()
              if any(marker in line for marker in LOG_MARKERS)]
    assert leaked == []


def test_second_chat_on_the_same_database_resumes_where_the_first_stopped(
    tmp_path: Path,
) -> None:
    # First visit: a complete need (the animator's notification goes to a chat the local
    # Bot API does not know: an error for the log), then a second need started and left
    # after its SIRET.
    first = chat(tmp_path, "\n".join([
        "1", "73282932000074", "Menuiserie Dupont", "Paray-le-Monial", "1",
        "Nous cherchons deux soudeurs qualifiés pour notre atelier de Paray.",
        "1", "1", "1",
        "/start", "73282932000074", "",
    ]))
    assert_only_the_conversation(first)
    assert "TI-2026-0001" in first.stdout
    assert first.stdout.rstrip().endswith(NAME_QUESTION + "\n\nAu revoir.")
    log = tmp_path / "data" / "relais-chat.log"
    assert f"Le journal technique est écrit dans {Path('data') / 'relais-chat.log'}." in (
        first.stdout)
    assert "Chat not found" in log.read_text(encoding="utf-8")

    # Second visit: the bot says where things stood, asks the pending question again, and
    # answers what is typed.
    second = chat(tmp_path, "Menuiserie Martin\n/mesdemandes\n")
    assert_only_the_conversation(second)
    greeting = "Relais › Reprenons où nous en étions.\nRelais › " + NAME_QUESTION
    assert greeting in second.stdout
    # Nothing from the bot before the greeting: it is the first thing the person reads.
    assert "Relais ›" not in second.stdout.split(greeting, 1)[0]
    after_name = second.stdout.split(greeting, 1)[1]
    assert COMMUNE_QUESTION in after_name
    assert "TI-2026-0001" in after_name
