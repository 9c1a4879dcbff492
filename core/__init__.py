"""Domain types, settings, the MQTT topic contract, clock and errors.

`core` is the bottom layer: it imports nothing from the rest of fmon, and every other
package may import it.
"""
