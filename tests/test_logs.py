"""Logs of a full run hold no secret and no personal data; JSON lines when asked."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest

from bot.logs import RedactingFilter, configure_logging
from tests.conftest import RunningBot
from tests.helpers import press, reach_summary

MARKER = "Zébulon-7731"


@pytest.mark.slow
async def test_a_full_run_logs_no_token_password_or_personal_data(relais: RunningBot) -> None:
    stream = io.StringIO()
    handler = configure_logging(secrets=(relais.settings.telegram_bot_token, "smtp-s3cret-pw"),
                                as_json=True, stream=stream)
    try:
        logging.getLogger("test").info("login with smtp-s3cret-pw to %s",
                                       relais.settings.telegram_api_url + "/bot"
                                       + (relais.settings.telegram_bot_token or ""))
        firm = relais.api.user(6601)
        await reach_summary(firm, name=f"Atelier {MARKER}")
        relais.api.fail_next("sendMessage", status=500)  # an error path logs too
        await press(firm, "Envoyer la demande")
        for _ in range(400):
            if len(relais.smtp.messages) >= 2 and any(
                    c.status == 500 for c in relais.api.calls_of("sendMessage")):
                break
            await asyncio.sleep(0.05)
        # Every delivery done or recorded as failed (the 500 waits for a retry): all the
        # logging of this run has happened.
        await relais.settled()
    finally:
        logging.getLogger().removeHandler(handler)
    text = stream.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines and all({"time", "level", "logger", "message"} <= set(d) for d in lines)
    token = relais.settings.telegram_bot_token or ""
    assert token and token not in text and token.split(":")[1] not in text
    assert "smtp-s3cret-pw" not in text
    assert MARKER not in text and "soudeurs" not in text  # firm name and description


def test_redaction_rules() -> None:
    f = RedactingFilter(["hunter22"])
    assert f.redact("pw hunter22 for paul.dupont@menuiserie.fr") == "pw *** for p***@menuiserie.fr"
    assert f.redact("GET /bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/getMe") == "GET /bot***/getMe"
