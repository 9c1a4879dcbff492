"""Simulated devices that talk to fmon only over MQTT, as real gateways do.

Imports nothing from fmon but `core`.
"""
