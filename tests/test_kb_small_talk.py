"""Politeness alone (greetings, thanks, « ok », goodbyes) told apart from questions."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.small_talk import SMALL_TALK_KINDS, SmallTalk, small_talk


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("bonjour", "greeting"),
        ("Bonjour !", "greeting"),
        ("Bonsoir madame", "greeting"),
        ("slt", "greeting"),
        ("re bonjour", "greeting"),
        ("bonjour, bonne année !", "greeting"),
        ("merci beaucoup !", "thanks"),
        ("Je vous remercie pour ces informations.", "thanks"),
        ("génial, merci bcp", "thanks"),
        ("Mercii beaucouuup", "thanks"),
        ("okkk", "ack"),
        ("🙏", "thanks"),
        ("ok super", "ack"),
        ("d'accord", "ack"),
        ("C'est noté.", "ack"),
        ("👍🏽", "ack"),
        ("au revoir", "goodbye"),
        ("Merci pour votre réponse, bonne journée !", "goodbye"),
        ("ça marche, à plus", "goodbye"),
        ("ça va ?", "how_are_you"),
        ("t'es un robot ?", "who_are_you"),
        ("yo", "greeting"),
        ("c'est très clair, merci", "thanks"),
        ("limpide 👍", "ack"),
    ],
)
def test_politeness_is_recognised_with_its_kind(message: str, kind: str) -> None:
    assert small_talk(message) == kind


@pytest.mark.parametrize(
    "message",
    [
        "bonjour, je cherche une aide pour recruter un soudeur",
        "c'est clair pour le crédit d'impôt recherche ?",
        "je vois pas comment financer la presse",
        "merci de me rappeler demain",
        "ok pour le rendez-vous de mardi",
        "Très réactifs, merci !",
        "salut, c'est quoi la POEI ?",
        "bonjour aide apprenti",
        "pour votre",
        "",
        "?!",
        "merci " * 20,
    ],
)
def test_a_message_that_asks_anything_is_not_small_talk(message: str) -> None:
    assert small_talk(message) is None


def test_kinds_come_from_the_data_file_in_priority_order(tmp_path: Path) -> None:
    data = tmp_path / "small_talk.yaml"
    data.write_text(
        "kinds:\n  greeting: [coucou]\n  thanks: [merci]\nfiller: [bien]\n", encoding="utf-8"
    )
    talk = SmallTalk.from_file(data)
    assert talk.kind("coucou") == "greeting"
    assert talk.kind("coucou, merci bien") == "thanks"  # thanks comes first in the order
    assert talk.kind("bonjour") is None  # not in this file
    assert SMALL_TALK_KINDS.index("thanks") < SMALL_TALK_KINDS.index("greeting")
