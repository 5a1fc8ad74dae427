"""The largest id a client may name: id columns are INTEGER, 32-bit on PostgreSQL, so a larger
number can name no row and would make the database fail instead of answering "not found"."""

from __future__ import annotations

MAX_ID = 2**31 - 1
