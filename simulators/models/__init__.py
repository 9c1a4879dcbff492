"""Device models, one module per family: pure, seeded, no I/O.

`DeviceModel.sample(ts)` returns the metrics and events of a device at a simulated time;
`act()` applies a scenario action, `command()` a command from fmon. See `base.py`.
"""

from simulators.models.base import CommandRejected, DeviceModel, Sample
from simulators.models.elevator import ElevatorModel
from simulators.models.env import EnvSensor
from simulators.models.fire_panel import FirePanelModel
from simulators.models.gas import GasDetectorModel
from simulators.models.meter import MeterModel
from simulators.models.pump import PumpModel

__all__ = [
    "CommandRejected", "DeviceModel", "ElevatorModel", "EnvSensor", "FirePanelModel", "GasDetectorModel",
    "MeterModel", "PumpModel", "Sample",
]
