"""MQTT consumer, payload decoders, and the batching writer to the telemetry store."""
