"""PURE protocol code: bytes -> typed values -> bytes (design.md §3).

Nothing in this package does I/O, reads the clock or invents ids: times and ids are arguments.
It imports nothing of winmdm but `winmdm.errors` (a test enforces it).
"""
