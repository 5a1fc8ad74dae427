"""Storage: role-named store protocols and their one SQL implementation (design.md §3).

Services import the protocols; the application wires `SQLStorage` on an engine made by
`create_engine_for` and brought up to date by `migrate`.
"""

from winmdm.storage.database import create_engine_for, current_revision, head_revision, migrate
from winmdm.storage.sql import DuplicateSerial, SQLStorage

__all__ = [
    "DuplicateSerial",
    "SQLStorage",
    "create_engine_for",
    "current_revision",
    "head_revision",
    "migrate",
]
