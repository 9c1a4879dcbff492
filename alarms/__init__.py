"""Alarm lifecycle (ISA-18.2), inhibition, shelving, escalation, notification, KPIs."""
