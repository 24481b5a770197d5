"""Keeping what the sender wrote: replies as Gmail, Outlook, Apple Mail and webmails quote them."""

from __future__ import annotations

from pathlib import Path

import pytest

from handlers.mail.decode import parse_inbound
from handlers.mail.quotes import strip_quoted

CORPUS = Path(__file__).parent / "mail_corpus"

ORIGINAL = """Bonjour Sophie Martin,

Une entreprise du territoire a un besoin qui relève de votre structure.

Référence : TI-2026-0042

Claire Martin
Animatrice Territoires d'industrie"""
SIGNATURE_DELIMITER = "-- "  # with its trailing space, which an editor would strip
QUOTED = "\n".join(f"> {line}" if line else ">" for line in ORIGINAL.split("\n"))

# (case, body, what the sender wrote)
CASES: list[tuple[str, str, str]] = [
    (
        "gmail-fr-top-posting-wrapped-attribution",
        f"""Bien reçu, je les appelle jeudi.

Marc

Le mar. 1 déc. 2026 à 10:00, Relais Territoires d'industrie <
relais+k3v9x2m4q8w1z7p5@relais.example.org> a écrit :

{QUOTED}
""",
        "Bien reçu, je les appelle jeudi.\n\nMarc",
    ),
    (
        "gmail-fr-attribution-wrapped-before-a-ecrit",
        f"""C'est noté, merci.

Le mar. 1 déc. 2026 à 10:00, Relais Territoires d'industrie <relais@relais.example.org> a
écrit :

{QUOTED}
""",
        "C'est noté, merci.",
    ),
    (
        "gmail-fr-nbsp-before-colon",
        f"Parfait.\n\nLe lun. 30 nov. 2026 à 18:04, Claire Martin <claire.martin@example.org> a écrit\xa0:\n{QUOTED}\n",
        "Parfait.",
    ),
    (
        "gmail-en-top-posting",
        f"""Thanks, we will call them tomorrow.

On Tue, Dec 1, 2026 at 10:00 AM Relais <relais@relais.example.org> wrote:

{QUOTED}
""",
        "Thanks, we will call them tomorrow.",
    ),
    (
        "gmail-en-wrapped-attribution",
        f"""Noted.

On Tue, Dec 1, 2026 at 10:00 AM Relais Territoires d'industrie <
relais@relais.example.org> wrote:
{QUOTED}
""",
        "Noted.",
    ),
    (
        "outlook-fr-header-block",
        f"""Bonjour,

Bien reçu, nous contactons l'entreprise demain.

Cordialement,
Sophie Martin
CCI Saône-et-Loire

De : Relais Territoires d'industrie <relais+k3v9x2m4q8w1z7p5@relais.example.org>
Envoyé : mardi 1 décembre 2026 10:00
À : Sophie Martin <sophie.martin@cci71.example>
Cc : Claire Martin <claire.martin@example.org>
Objet : [TI-2026-0042] Recrutement — Menuiserie X (Paray-le-Monial)

{ORIGINAL}
""",
        "Bonjour,\n\nBien reçu, nous contactons l'entreprise demain.\n\nCordialement,\nSophie Martin\nCCI Saône-et-Loire",
    ),
    (
        "outlook-en-header-block",
        f"""Hi Claire,

Got it, thanks.

From: Relais <relais@relais.example.org>
Sent: Tuesday, December 1, 2026 10:00 AM
To: Tom Baker <tom.baker@partner.example>
Subject: [TI-2026-0042] Recruitment

{ORIGINAL}
""",
        "Hi Claire,\n\nGot it, thanks.",
    ),
    (
        "outlook-web-underscores",
        f"""Bien reçu.

Anne

________________________________
De : Relais <relais@relais.example.org>
Envoyé : mardi 1 décembre 2026 10:00
À : Anne Leroy
Objet : [TI-2026-0042] Recrutement

{ORIGINAL}
""",
        "Bien reçu.\n\nAnne",
    ),
    (
        "outlook-message-d-origine",
        f"""Je transmets à ma collègue en charge du recrutement.

-----Message d'origine-----
De : Relais [mailto:relais@relais.example.org]
Envoyé : mardi 1 décembre 2026 10:00
À : Pierre Garnier
Objet : [TI-2026-0042] Recrutement

{ORIGINAL}
""",
        "Je transmets à ma collègue en charge du recrutement.",
    ),
    (
        "outlook-original-message-en",
        f"""OK for me.

-----Original Message-----
From: Relais [mailto:relais@relais.example.org]
Sent: Tuesday, December 01, 2026 10:00 AM
To: Pierre Garnier
Subject: [TI-2026-0042] Recruitment

{ORIGINAL}
""",
        "OK for me.",
    ),
    (
        "outlook-bold-fields-as-gmail-renders-them",
        f"""Pour info.

*De :* Relais <relais@relais.example.org>
*Envoyé :* mardi 1 décembre 2026 10:00
*À :* Julie Petit <julie.petit@partner.example>
*Objet :* [TI-2026-0042] Recrutement

{ORIGINAL}
""",
        "Pour info.",
    ),
    (
        "apple-mail-macos-top-posting",
        f"""Entendu, je passe vendredi.

Julie

> Le 1 déc. 2026 à 10:00, Relais Territoires d'industrie <relais@relais.example.org> a écrit :
>
{QUOTED}
""",
        "Entendu, je passe vendredi.\n\nJulie",
    ),
    (
        "apple-mail-attribution-not-quoted",
        f"""Très bien.

Le 1 déc. 2026 à 10:00, Relais <relais@relais.example.org> a écrit :

{QUOTED}
""",
        "Très bien.",
    ),
    (
        "iphone-signature",
        f"""D'accord pour jeudi.

Envoyé de mon iPhone

> Le 1 déc. 2026 à 10:00, Relais <relais@relais.example.org> a écrit :
>
{QUOTED}
""",
        "D'accord pour jeudi.",
    ),
    (
        "iphone-en-signature",
        f"Fine by me.\n\nSent from my iPhone\n\n{QUOTED}\n",
        "Fine by me.",
    ),
    (
        "orange-mobile-signature",
        "Je vous rappelle demain matin.\n\nEnvoyé depuis mon mobile Orange\n\n---- Message d'origine ----\nDe : Relais\n",
        "Je vous rappelle demain matin.",
    ),
    (
        "android-outlook-footer",
        f"Bien noté.\n\nObtenir Outlook pour Android\n________________________________\n{ORIGINAL}\n",
        "Bien noté.",
    ),
    (
        "samsung-signature",
        "Ok.\n\nEnvoyé de mon appareil Galaxy\n\n-------- Message original --------\nDe : Relais\n",
        "Ok.",
    ),
    (
        "orange-webmail",
        """Bonjour,

Accusé de réception de la demande TI-2026-0042.

Anne Leroy

> Message du 01/12/26 10:00
> De : "Relais" <relais@relais.example.org>
> A : "Anne Leroy" <anne.leroy@orange.example>
> Copie à :
> Objet : [TI-2026-0042] Recrutement
>
> Bonjour Anne Leroy,
""",
        "Bonjour,\n\nAccusé de réception de la demande TI-2026-0042.\n\nAnne Leroy",
    ),
    (
        "zimbra-sfr-mail-original",
        f"""Bonjour, c'est noté.

----- Mail original -----
De: "Relais" <relais@relais.example.org>
À: "Luc Fabre" <luc.fabre@sfr.example>
Envoyé: Mardi 1 Décembre 2026 10:00:00
Objet: [TI-2026-0042] Recrutement

{ORIGINAL}
""",
        "Bonjour, c'est noté.",
    ),
    (
        "zimbra-mail-d-origine-typographic-apostrophe",
        "Merci.\n\n----- Mail d’origine -----\nDe: Relais\n",
        "Merci.",
    ),
    (
        "thunderbird-bottom-posting-with-signature",
        f"""Le 01/12/2026 à 10:00, Relais Territoires d'industrie a écrit :
> Bonjour,
>
> Merci d'accuser réception en répondant à ce message.

Bien reçu. Nous prenons contact avec l'entreprise cette semaine.

{SIGNATURE_DELIMITER}
Pierre Garnier
Agence de développement économique
""",
        "Bien reçu. Nous prenons contact avec l'entreprise cette semaine.",
    ),
    (
        "thunderbird-inline-answers-keep-their-questions",
        """Le 01/12/2026 à 10:00, Claire Martin a écrit :
> Pouvez-vous rencontrer l'entreprise cette semaine ?
Oui, jeudi à 14 h.

> Avez-vous besoin du contact du dirigeant ?
Non, nous l'avons déjà.

> Cordialement,
> Claire Martin
""",
        """> Pouvez-vous rencontrer l'entreprise cette semaine ?
Oui, jeudi à 14 h.

> Avez-vous besoin du contact du dirigeant ?
Non, nous l'avons déjà.""",
    ),
    (
        "nested-quotes-dropped",
        "Vu.\n\nOn Tue, Dec 1, 2026 at 10:00 AM Anne <a@x.example> wrote:\n> Et toi ?\n>\n>> Le 30 nov. 2026, Relais a écrit :\n>> Bonjour\n",
        "Vu.",
    ),
    (
        "gmail-forwarded-message",
        "Pour info, voir ci-dessous.\n\n---------- Forwarded message ---------\nDe : Contact <contact@menuiserie-x.example>\nDate: lun. 30 nov. 2026 à 16:00\nSubject: Besoin\n\nBonjour...\n",
        "Pour info, voir ci-dessous.",
    ),
    (
        "gmail-message-transfere-fr",
        "À saisir stp.\n\n---------- Message transféré ---------\nDe : Contact <contact@menuiserie-x.example>\n",
        "À saisir stp.",
    ),
    (
        "apple-mail-forward-fr",
        "Voir ci-dessous.\n\nDébut du message réexpédié :\n\nDe: Contact <contact@menuiserie-x.example>\n",
        "Voir ci-dessous.",
    ),
    (
        "yahoo-dated-attribution-over-unquoted-original",
        f"Merci beaucoup.\n\n    Le mardi 1 décembre 2026 à 10:00:00 UTC+1, Relais <relais@relais.example.org> a écrit :\n\n{ORIGINAL}\n",
        "Merci beaucoup.",
    ),
    (
        "signature-delimiter-without-quote",
        "Bien reçu.\n\n-- \nJean Dupont\nMenuiserie X\n06 12 34 56 78\n",
        "Bien reçu.",
    ),
    (
        "no-quote-at-all-keeps-everything",
        "Bonjour,\n\nNous avons besoin d'un soudeur.\n\nCordialement,\nJean Dupont\nMenuiserie X",
        "Bonjour,\n\nNous avons besoin d'un soudeur.\n\nCordialement,\nJean Dupont\nMenuiserie X",
    ),
    (
        "schedule-lines-are-not-an-outlook-header",
        "Rendez-vous confirmé.\nDe : 9 h à 12 h\nÀ : Paray-le-Monial, salle B2\nMerci.",
        "Rendez-vous confirmé.\nDe : 9 h à 12 h\nÀ : Paray-le-Monial, salle B2\nMerci.",
    ),
    (
        "finished-sentence-is-not-a-wrapped-attribution",
        "Le rendez-vous du 12 est confirmé.\nMarc a écrit :\n> Pouvez-vous confirmer le 12 ?\n",
        "Le rendez-vous du 12 est confirmé.",
    ),
    (
        "a-sentence-ending-in-wrote-is-kept-with-its-quote",
        "Here is what the mayor wrote:\n> We support the project.\nI agree with him.\n",
        "Here is what the mayor wrote:\n> We support the project.\nI agree with him.",
    ),
    (
        "sent-from-my-desk-is-not-a-mobile-signature",
        "Envoyé de mon bureau à Mâcon, comme convenu.\nJean",
        "Envoyé de mon bureau à Mâcon, comme convenu.\nJean",
    ),
    (
        "crlf-line-endings",
        "Bien reçu.\r\n\r\nDe : Relais\r\nEnvoyé : mardi 1 décembre 2026 10:00\r\nObjet : Test\r\n",
        "Bien reçu.",
    ),
    (
        "only-a-quote-returns-the-original",
        f"\n{QUOTED}\n\n",
        QUOTED,
    ),
    (
        "only-a-mobile-signature-returns-the-original",
        "Envoyé de mon iPhone\n\n> Le 1 déc. 2026, Relais a écrit :\n> Bonjour\n",
        "Envoyé de mon iPhone\n\n> Le 1 déc. 2026, Relais a écrit :\n> Bonjour",
    ),
    (
        "sfr-webmail-message-du",
        f"""Bonjour,

Nous avons pris contact avec l'entreprise ce matin.

Paul Girard

Message du : 12/12/2016 13:20
De : "Relais Territoires d'industrie" <relais@relais.example.org>
A : paul.girard@sfr.fr
Copie à : claire.martin@example.org
Sujet : [TI-2026-0042] Recrutement

{ORIGINAL}
""",
        "Bonjour,\n\nNous avons pris contact avec l'entreprise ce matin.\n\nPaul Girard",
    ),
    (
        "sfr-webmail-prefixed",
        "D'accord pour jeudi.\n\n> Message du : 01/12/2026 10:00\n> De : Relais <relais@relais.example.org>\n"
        "> A : paul.girard@sfr.fr\n> Copie à :\n> Sujet : RDV\n>\n> Bonjour\n",
        "D'accord pour jeudi.",
    ),
    (
        "sfr-header-block-without-message-du",
        f"""Bien reçu.

De : Relais <relais@relais.example.org>
A : paul.girard@sfr.fr
Copie à :
Sujet : [TI-2026-0042] Recrutement

{ORIGINAL}
""",
        "Bien reçu.",
    ),
    (
        "outlook-com-block-opened-by-date",
        f"""Thanks, I will call them on Monday.

Tom

Date: Tue, 1 Dec 2026 10:00:00 +0100
From: relais@relais.example.org
To: tom.baker@hotmail.com
Subject: [TI-2026-0042] Recruitment

{ORIGINAL}
""",
        "Thanks, I will call them on Monday.\n\nTom",
    ),
    (
        "outlook-com-block-opened-by-date-fr",
        f"""Merci, je m'en occupe.

Date : Tue, 1 Dec 2026 10:00:00 +0100
De : relais@relais.example.org
À : anne.leroy@outlook.fr
Objet : [TI-2026-0042] Recrutement

{ORIGINAL}
""",
        "Merci, je m'en occupe.",
    ),
    (
        "outlook-com-underscores-then-date",
        f"""Noted.

________________________________
Date: Tue, 1 Dec 2026 10:00:00 +0100
From: relais@relais.example.org
To: tom.baker@hotmail.com
Subject: Recruitment

{ORIGINAL}
""",
        "Noted.",
    ),
    (
        "a-date-line-of-the-sender-is-kept",
        "Rendez-vous confirmé.\nDate : jeudi 14 janvier\nLieu : salle B2\nObjet : recrutement\nMerci.",
        "Rendez-vous confirmé.\nDate : jeudi 14 janvier\nLieu : salle B2\nObjet : recrutement\nMerci.",
    ),
    (
        "german-outlook-urspruengliche-nachricht",
        f"""Vielen Dank, wir melden uns bei der Firma.

Mit freundlichen Grüßen
Hans Weber

-----Ursprüngliche Nachricht-----
Von: Relais <relais@relais.example.org>
Gesendet: Dienstag, 1. Dezember 2026 10:00
An: Hans Weber <hans.weber@partner.example>
Betreff: [TI-2026-0042] Recrutement

{ORIGINAL}
""",
        "Vielen Dank, wir melden uns bei der Firma.\n\nMit freundlichen Grüßen\nHans Weber",
    ),
    (
        "german-outlook-header-block",
        f"""Erledigt.

Von: Relais <relais@relais.example.org>
Gesendet: Dienstag, 1. Dezember 2026 10:00
An: Hans Weber <hans.weber@partner.example>
Cc: Claire Martin <claire.martin@example.org>
Betreff: [TI-2026-0042] Recrutement

{ORIGINAL}
""",
        "Erledigt.",
    ),
    ("empty", "", ""),
    ("blank", " \n\n \n", ""),
]


def test_at_least_twenty_real_looking_bodies() -> None:
    assert len(CASES) >= 20
    assert len({case for case, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(("case", "body", "expected"), CASES, ids=[c for c, _, _ in CASES])
def test_strip_quoted(case: str, body: str, expected: str) -> None:
    assert strip_quoted(body) == expected


@pytest.mark.parametrize(("case", "body", "expected"), CASES, ids=[c for c, _, _ in CASES])
def test_strip_quoted_is_idempotent(case: str, body: str, expected: str) -> None:
    assert strip_quoted(strip_quoted(body)) == strip_quoted(body)


# Decoded corpus emails, end to end: parse_inbound then strip_quoted.
CORPUS_STRIPPED = {
    "human_gmail_fr.eml": "Bonjour Claire,\n\nBien reçu pour la Menuiserie X, je les appelle jeudi.\n\nBonne journée,\nMarc",
    "human_outlook_fr.eml": (
        "Bonjour,\n\n"
        "Bien reçu, merci. Nous contactons la Menuiserie X dès demain matin pour organiser un rendez-vous.\n"
        "Vous trouverez ci-joint notre fiche de liaison.\n\n"
        "Cordialement,\n\nSophie Martin\nChargée de mission emploi-compétences\nCCI Saône-et-Loire\n03 85 00 00 00"
    ),
    "human_iphone.eml": "D'accord, je passe les voir vendredi.",
    "human_thunderbird_latin1.eml": (
        "Bien reçu. Nous prenons contact avec l'entreprise cette semaine et vous tiendrons informés de la suite."
    ),
    "human_ack_orange.eml": "Bonjour,\n\nAccusé de réception de la demande TI-2026-0042, nous la traitons.\n\nAnne Leroy\nADIE Bourgogne",
    "human_forward_rfc822.eml": "Pour info, la demande reçue hier. Peux-tu la saisir ?",
}


@pytest.mark.parametrize(("name", "expected"), sorted(CORPUS_STRIPPED.items()))
def test_corpus_end_to_end(name: str, expected: str) -> None:
    assert strip_quoted(parse_inbound((CORPUS / name).read_bytes()).text) == expected


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        (
            # Gmail's HTML: the quote is a blockquote, read as "> " lines.
            '<div dir="ltr">Merci, c\'est noté.</div><br><div class="gmail_quote"><div dir="ltr" '
            'class="gmail_attr">Le&nbsp;mar. 1 déc. 2026 à&nbsp;10:00, Relais &lt;<a href="mailto:r@x">'
            'r@x</a>&gt; a écrit&nbsp;:<br></div><blockquote class="gmail_quote">Bonjour,<br>'
            "Une entreprise...</blockquote></div>",
            "Merci, c'est noté.",
        ),
        (
            # Outlook's HTML: the header block comes out as plain lines.
            '<p class="MsoNormal">Bien reçu.</p><p class="MsoNormal">&nbsp;</p><div style="border-top:solid">'
            '<p class="MsoNormal"><b>De&nbsp;:</b> Relais &lt;r@x&gt;<br><b>Envoyé&nbsp;:</b> mardi 1 décembre '
            "2026 10:00<br><b>À&nbsp;:</b> Sophie<br><b>Objet&nbsp;:</b> Test</p></div><p>Bonjour Sophie</p>",
            "Bien reçu.",
        ),
    ],
)
def test_html_bodies_after_conversion(html: str, expected: str) -> None:
    raw = f"From: a@b.example\nContent-Type: text/html; charset=utf-8\n\n{html}\n".encode()
    assert strip_quoted(parse_inbound(raw).text) == expected
