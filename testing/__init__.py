"""Test doubles: stand-ins for what Relais talks to (Telegram, mail servers, the company
directory, PostgreSQL, the clock), used by the tests, the benches and `relais chat`.

Nothing in the product imports this package, except `relais chat` (`bot/terminal.py`), which
runs the real bot against the Bot API double.
"""
