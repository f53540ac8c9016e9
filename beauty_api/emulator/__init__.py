"""A loopback emulator of the AILabTools Face Beauty Pro API, for tests and offline demos.

`with Emulator() as emu:` serves the documented submit, task-query and credits endpoints on
`emu.base_url` and the result files on `emu.cdn_base_url`, with a deterministic stand-in effect
(not the real retouching), the API's error bodies, billing, result expiry and injectable faults.
Run it by hand with `python -m beauty_api.emulator`.
"""

from .faults import FaultPlan
from .server import Emulator
from .stats import EmulatorStats

__all__ = ["Emulator", "EmulatorStats", "FaultPlan"]
