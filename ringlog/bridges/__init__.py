"""SQS at the edges: queues bridged into the log, and topics bridged out to queues.

* **In** (:mod:`.inbound`): legacy producers keep writing call requests and Retell webhook
  bodies to their queues; each message becomes the event the API would have appended (the
  same parsing, call-ref and dedupe rules, :mod:`ringlog.api.ingest`), acknowledged by the log
  before the message is deleted. A message that cannot be used is kept on ``quarantine``.
* **Out** (:mod:`.outbound`): consumers that still read a queue get ringlog's events (the
  ``abt`` topic), sent by the one runtime with its checkpoints; a send that keeps failing stops
  the bridge at that record, never skipping it.

The pure parts — message → event (:mod:`.messages`), record → SQS entry (:mod:`.entries`) —
do no I/O; :mod:`.sqs` is the thin boto3 shell (every call in a thread). This package's
``__init__`` imports nothing, so the CLI can name the bridges cheaply.
"""
