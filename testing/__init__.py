"""Test doubles for what Relais talks to, used by the tests, the benches and `relais chat`.

Telegram's Bot API (``testing.botapi``), SMTP, IMAP, the company directory, scratch
PostgreSQL databases and a clock moved by hand. Nothing in the product imports this
package, except `relais chat` (``bot/terminal.py``), which runs the real bot against the
Bot API double.
"""
