"""Wiring: builds fmon's processes from settings, and the `fmon` command.

The only package that imports every other one.
"""
