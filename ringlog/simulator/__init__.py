"""A local Retell: accepts create-call requests and plays each call back as signed webhooks.

Build it with :func:`create_simulator`; inject failures with :class:`Faults`. With
``settings.simulator.llm_websocket_url`` set, each connected call is a dialog between a
scripted patient (:class:`Persona`) and ringlog's custom-LLM socket; ``POST /sim/inbound``
makes a patient call in.
"""

from ringlog.simulator.app import create_simulator
from ringlog.simulator.faults import Faults
from ringlog.simulator.patient import Persona

__all__ = ["Faults", "Persona", "create_simulator"]
