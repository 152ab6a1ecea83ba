"""A local Retell: accepts create-call requests and plays each call back as signed webhooks.

Build it with :func:`create_simulator`; inject failures with :class:`Faults`.
"""

from ringlog.simulator.app import create_simulator
from ringlog.simulator.faults import Faults

__all__ = ["Faults", "create_simulator"]
