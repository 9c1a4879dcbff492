"""Simulated devices that talk to fmon only over MQTT, as real gateways do.

Imports nothing from fmon but `core` (an import-linter contract). The pieces, from the inside
out (docs/simulators.md has the whole story):

- `models/`: one seeded, pure model per device family (`sample(ts)`, actions, commands);
- `site`: devices, the gateways they sit behind, and the demo estate;
- `engine`: a site over simulated time (schedules, `seq`, scenario steps, commands);
- `gateway`, `mqtt_transport`: a gateway's link (store-and-forward) over one MQTT connection;
- `runner` (real or accelerated time) and `offline` (full speed, in memory);
- `scenario`, `expect`: scenario files and their expected signatures;
- `load`: the load generator; `backfill`: generated history with maintenance and failures.
"""
