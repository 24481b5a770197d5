"""What a firm reads of the knowledge base: cards, details and « Qui contacter »."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from test_kb_helpers import write_card

from bot.catalogue import entries, label
from bot.messages import Text
from bot.services.questions import PARTNER_KINDS_FILE, QuestionService
from handlers.render import email_body, telegram_text
from knowledge.retrieval import KnowledgeBase
from knowledge.taxonomy import PARTNER_KINDS

TZ = ZoneInfo("Europe/Paris")


def _service(kb: KnowledgeBase) -> QuestionService:
    return QuestionService(kb, tz=TZ, clock=lambda: datetime(2026, 3, 2, 10, tzinfo=TZ),
                           secret="test")


def test_every_partner_kind_is_described_in_plain_words() -> None:
    """Each kind a card may name has a name and a role for firms, without jargon."""
    for kind in PARTNER_KINDS:
        name, role = label(f"firm.partner_kind_{kind}"), label(f"firm.partner_kind_{kind}_role")
        assert name and role, kind
        # Read after « Name : »: lower case, no final full stop, no administrative jargon.
        assert role[0].islower() and not role.endswith("."), kind
        assert not re.search(r"loi NOTRe|chef de file|paritaire", role, re.I), kind
    websites = yaml.safe_load(PARTNER_KINDS_FILE.read_text(encoding="utf-8"))
    assert set(websites) <= set(PARTNER_KINDS)
    assert not [k for k in entries() if k.startswith("firm.partner_kind_")
                and k.removeprefix("firm.partner_kind_").removesuffix("_role")
                not in PARTNER_KINDS]


def test_contacts_of_a_title_in_guillemets() -> None:
    """« Qui contacter » does not put a title already in guillemets into guillemets again."""
    kb = KnowledgeBase.load(None)
    card = kb.get("manufactures_de_proximite")
    assert card is not None and "«" in card.title
    action = _service(kb).on_button(None, f"c:{card.id}")  # type: ignore[arg-type]
    (message,) = action.messages
    html = telegram_text(message.text)
    assert html.startswith(f"<b>Qui contacter : {card.title}</b>\n• <b>")
    assert "« «" not in html and "» »" not in html and "« AMI" not in html
    chef = label("firm.partner_kind_animateur")
    assert f"<b>{chef}</b> : " in html


def test_ended_card_without_successor_names_it_once(tmp_path: Path) -> None:
    """An ended card with no successor: its title once, the end date, then its summary."""
    write_card(tmp_path, "aide_finie", title="Aide finie aux soudeurs", ends="2025-12-31")
    kb = KnowledgeBase.load(tmp_path)
    card = kb.get("aide_finie")
    assert card is not None
    message = _service(kb)._card_message(card, None)
    text = message.text.plain()
    assert text.count("Aide finie aux soudeurs") == 1
    assert text.startswith("Aide finie aux soudeurs\nCe dispositif a pris fin le 31/12/2025.\n")


def test_details_link_the_sources() -> None:
    """Sources are links named by their host, in Telegram and in an email."""
    kb = KnowledgeBase.load(None)
    card = kb.get("manufactures_de_proximite")
    assert card is not None
    (message,) = _service(kb).on_button(None, f"d:{card.id}").messages  # type: ignore[arg-type]
    assert isinstance(message.text, Text)
    url = card.sources[0]
    assert f'<a href="{url}">' in telegram_text(message.text)
    body = email_body(message.text)
    assert f'<a href="{url}">' in body.html and f"<{url}>" in body.text
