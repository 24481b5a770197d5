"""Relais runtime: configuration, services, wiring and the command line."""

import os

# Opt in to python-telegram-bot's timedelta durations (RetryAfter.retry_after) now,
# rather than on its next major version; our code accepts both forms.
os.environ.setdefault("PTB_TIMEDELTA", "1")
