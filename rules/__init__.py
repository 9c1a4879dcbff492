"""The rules engine: pure evaluation of (state, reading, now) into condition changes.

Nothing here does I/O or reads the wall clock; time arrives as an argument.
"""
