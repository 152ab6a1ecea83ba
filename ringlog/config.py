"""The one settings tree for every ringlog process.

Each section reads its own environment prefix (``RINGLOG_KAFKA_BOOTSTRAP``,
``RINGLOG_REDIS_URL``, ``RINGLOG_RETELL_API_KEY``, ``RINGLOG_API_KEYS`` …). Values are
resolved in this order, first match wins:

1. keyword arguments (tests and composition roots),
2. environment variables,
3. the address file written by ``ringlog dev up`` (``<home>/stack.json``),
4. the defaults below.

Settings are read once, at the edge (``Settings.load()`` in a composition root), and passed
down as objects; nothing else in ringlog reads the environment.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from ringlog.errors import ConfigurationError

#: Environment variable naming the directory that holds the embedded stack's files.
HOME_ENV = "RINGLOG_HOME"
#: The warehouse's phone-hash key when none is set: a public string, refused outside the
#: embedded stack (:func:`require_phone_hash_key`).
DEFAULT_PHONE_HASH_KEY = "change-me-in-production"
#: Name of the address file inside the home directory.
STACK_FILE = "stack.json"


def ringlog_home() -> Path:
    """Return the directory for local state (``$RINGLOG_HOME`` or ``./.ringlog``)."""
    return Path(os.environ.get(HOME_ENV, ".ringlog")).resolve()


def read_stack_file(home: Path | None = None) -> dict[str, dict[str, Any]]:
    """Return the settings sections written by ``ringlog dev up``, or ``{}`` when absent."""
    path = (home or ringlog_home()) / STACK_FILE
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    settings = data.get("settings", {})
    return settings if isinstance(settings, dict) else {}


class _StackFileSource(PydanticBaseSettingsSource):
    """Settings source reading one section of the dev stack's address file."""

    def __init__(self, settings_cls: type[BaseSettings], section: str) -> None:
        super().__init__(settings_cls)
        self._values = read_stack_file().get(section, {})

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._values.items() if k in self.settings_cls.model_fields}


class _Section(BaseSettings):
    """A settings section: environment first, then the dev stack file, then defaults."""

    #: Key of this section in the dev stack's address file; empty means "not written there".
    stack_section: ClassVar[str] = ""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls.stack_section:
            sources.append(_StackFileSource(settings_cls, cls.stack_section))
        return tuple(sources)


class KafkaSettings(_Section):
    """The log: where the brokers are and how ringlog talks to them."""

    model_config = SettingsConfigDict(env_prefix="RINGLOG_KAFKA_", frozen=True)
    stack_section: ClassVar[str] = "kafka"

    bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = "ringlog."
    client_id: str = "ringlog"
    #: Partitions for new topics when a topic's declaration does not fix them.
    default_partitions: int = 3
    replication_factor: int = 1
    #: Enable only on a real Kafka cluster; the embedded Tansu broker refuses it.
    enable_idempotence: bool = False
    request_timeout_ms: int = 5_000
    #: Upper bound for one append (send + broker ack), well under Retell's 10 s webhook timeout.
    append_timeout_s: float = 3.0
    #: Consumer-group liveness. Tansu holds a new group's first JoinGroup for about half the
    #: session timeout, so the embedded stack writes a short one (2 s) into its address file.
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    #: How long a fetch may wait on the broker for new records. Kafka answers as soon as data
    #: arrives; Tansu answers after about half of this wait even when data is there, so the
    #: embedded stack writes a short one (50 ms) and each consumer hop costs ~25 ms there.
    fetch_max_wait_ms: int = 500
    #: Consumer fetch sizes; large values matter for replay speed.
    fetch_max_bytes: int = 52_428_800
    max_partition_fetch_bytes: int = 8_388_608


class RedisSettings(_Section):
    """The session cache."""

    model_config = SettingsConfigDict(env_prefix="RINGLOG_REDIS_", frozen=True)
    stack_section: ClassVar[str] = "redis"

    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "ringlog:"


class WarehouseSettings(_Section):
    """Snowflake (or the fakesnow server locally), reached through snowflake-connector-python."""

    model_config = SettingsConfigDict(env_prefix="RINGLOG_SNOWFLAKE_", frozen=True)
    stack_section: ClassVar[str] = "warehouse"

    account: str = "ringlog"
    user: str = "ringlog"
    password: SecretStr = SecretStr("ringlog")
    database: str = "RINGLOG"
    schema_name: str = Field(default="ANALYTICS", validation_alias="RINGLOG_SNOWFLAKE_SCHEMA")
    warehouse: str | None = None
    role: str | None = None
    #: Set for fakesnow or a private link; unset means Snowflake's own host for the account.
    host: str | None = None
    port: int | None = None
    protocol: str = "https"
    #: Key for the HMAC that hashes phone numbers in analytics tables. The default is public:
    #: the services refuse it outside the embedded stack (:func:`require_phone_hash_key`).
    phone_hash_key: SecretStr = SecretStr(DEFAULT_PHONE_HASH_KEY)
    hash_phone_numbers: bool = True
    #: Keep what callers and agents said (dialog turns, Retell's transcripts and summaries),
    #: names and dates of birth in the warehouse too (``RINGLOG_WAREHOUSE_TRANSCRIPTS``); off,
    #: the warehouse holds none of them (the CRM, the system of record, keeps them).
    transcripts: bool = Field(default=False, validation_alias="RINGLOG_WAREHOUSE_TRANSCRIPTS")


class SqsSettings(_Section):
    """AWS SQS queues bridged in and out at the edges (moto server locally).

    On real AWS leave ``endpoint_url`` and the keys unset: requests go to the region's SQS
    endpoint, signed with the credentials of boto3's standard chain (``AWS_*`` environment
    variables, ``AWS_PROFILE`` and the shared config files, container and instance roles).
    ``endpoint_url`` overrides the endpoint (the embedded stack's moto server, a VPC endpoint,
    an emulator); the keys, when both are set, are used instead of the chain. Credentials are
    never logged.

    A queue setting left empty turns its bridge off (``RINGLOG_SQS_OUTBOUND_QUEUE=``); each
    takes a queue name (its URL is asked of SQS) or a queue URL. ``ringlog bridge`` runs the
    bridges of the queues set here; a name ending in ``.fifo`` is a FIFO queue.
    """

    model_config = SettingsConfigDict(env_prefix="RINGLOG_SQS_", frozen=True)
    stack_section: ClassVar[str] = "sqs"

    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    #: Upstream call requests (the outbound flow's first queue), bridged in (``call.requested``).
    call_requests_queue: str = "ringlog-call-requests"
    #: Retell webhook bodies forwarded to SQS (its second queue), bridged in like webhooks.
    webhook_events_queue: str = "ringlog-webhook-events"
    #: Where ringlog's ABT events are bridged out to, for consumers that still read SQS.
    outbound_queue: str = "ringlog-outbound"
    #: Long poll of one receive (SQS allows 0-20 s): an idle bridge asks SQS about once a poll.
    receive_wait_s: int = Field(default=20, ge=0, le=20)
    #: Visibility a received message is given, renewed every third of it while it is in
    #: flight (until its event is acknowledged by the log and it is deleted); a message whose
    #: append fails is made visible again at once, so it is retried soon.
    visibility_timeout_s: int = Field(default=30, ge=3, le=43_200)
    #: A failing SQS call or append is retried after this, doubling up to the cap.
    backoff_s: float = Field(default=0.2, gt=0)
    backoff_max_s: float = Field(default=10.0, gt=0)
    #: Receives each bridge in runs at once (each: receive, append, delete, in turn).
    in_pollers: int = Field(default=2, ge=1, le=32)
    #: Attempts to send a record out (with the backoff above) before the bridge out stops,
    #: naming the record's position; it is never skipped, and a restart starts from it.
    send_attempts: int = Field(default=8, ge=1)
    #: Records per fetch of the bridge out's runtime.
    out_max_records: int = Field(default=1_000, ge=1)
    #: Payload bytes per send request of the bridge out (SQS's batch limit was 256 KiB; a
    #: message larger than this is sent alone, and the queue's MaximumMessageSize decides).
    max_batch_bytes: int = Field(default=262_144, ge=1_024)


class CrmSettings(_Section):
    """The CRM database (SQLAlchemy URL): SQLite file locally, PostgreSQL in production."""

    model_config = SettingsConfigDict(env_prefix="RINGLOG_CRM_", frozen=True)
    stack_section: ClassVar[str] = "crm"

    url: str = "sqlite:///.ringlog/crm.db"


class RetellSettings(_Section):
    """Retell: API key (also the webhook signing key) and base URL."""

    model_config = SettingsConfigDict(env_prefix="RINGLOG_RETELL_", frozen=True)
    stack_section: ClassVar[str] = "retell"

    api_key: SecretStr | None = None
    base_url: str = "https://api.retellai.com"
    #: Accepted clock skew for ``x-retell-signature`` timestamps.
    signature_tolerance_s: int = 300
    #: Live calls allowed at once (Retell's default concurrency is 20).
    max_concurrent_calls: int = 20
    agent_id: str = "ringlog-flu-shot"


class WorkerSettings(_Section):
    """The worker: dispatch of call requests to Retell and the call lifecycle processor."""

    model_config = SettingsConfigDict(env_prefix="RINGLOG_WORKER_", frozen=True)

    #: The worker processes' consumer group: its members share the partitions of ``calls``.
    app_id: str = "ringlog-worker"
    #: Attempts per dispatch round for retryable Retell errors (429, 5xx, network).
    dispatch_attempts: int = 4
    #: First backoff between attempts; doubles each time, with full jitter, up to the cap.
    dispatch_backoff_s: float = 0.5
    dispatch_backoff_max_s: float = 8.0
    #: After a round's retries are exhausted the request stays pending and is retried this late.
    dispatch_cooldown_s: float = 30.0
    #: How often the dispatcher looks for due requests when nothing wakes it.
    dispatch_poll_s: float = 0.5
    #: How long a placement in flight holds its call against other workers; after a crash the
    #: call's next owner places it again once this expires (longer than a placement's retries).
    dispatch_lease_s: float = 60.0
    #: Records per fetch of the worker's runtime.
    max_records: int = 2_000
    #: Timeout of one Retell HTTP request.
    retell_timeout_s: float = 10.0


class SimulatorSettings(_Section):
    """The local Retell (``ringlog simulator``): where it listens and whom it calls back."""

    model_config = SettingsConfigDict(env_prefix="RINGLOG_SIMULATOR_", frozen=True)

    host: str = "127.0.0.1"
    port: int = 8100
    #: Where call events are posted (ringlog's webhook endpoint).
    webhook_url: str = "http://127.0.0.1:8000/v1/webhooks/retell"
    #: ringlog's custom-LLM socket base (``…/v1/llm``); empty plays a timed script instead.
    llm_websocket_url: str = ""
    #: Pace of the timed script (seconds): ringing, talking, analysis.
    ring_s: float = 0.05
    talk_s: float = 0.2
    analysis_s: float = 0.1


class DialogSettings(_Section):
    """The booking dialog: a deterministic policy, or an OpenAI-compatible model if enabled."""

    model_config = SettingsConfigDict(env_prefix="RINGLOG_DIALOG_", frozen=True)

    model_enabled: bool = False
    model_base_url: str = "https://api.openai.com/v1"
    model_name: str = "gpt-4o-mini"
    model_api_key: SecretStr | None = None
    #: A reply the model has not worded within this time is spoken as the policy wrote it.
    model_timeout_s: float = 3.0
    #: An incomplete session stays resumable this long after its last call drops.
    session_expiry_s: int = 24 * 3600
    #: Retell's longest call (the agent's ``max_call_duration_ms``; Retell allows 2 h at most).
    #: A number's claim lasts this long at most, and a call's announcement this plus ringing.
    max_call_s: int = 7200
    #: A dialog socket that receives no frame this long is closed (Retell pings every 2 s).
    idle_timeout_s: float = 60.0
    #: The largest frame the dialog socket reads; a larger one closes the socket (1009).
    max_frame_bytes: int = 1_048_576
    #: Dialog sockets open at once from one client address; more are closed (1013). Retell
    #: connects from few addresses: keep this above the workspace's call concurrency.
    max_sockets_per_address: int = 200


class ApiSettings(_Section):
    """The HTTP API."""

    model_config = SettingsConfigDict(env_prefix="RINGLOG_API_", frozen=True)

    host: str = "127.0.0.1"
    port: int = 8000
    #: Bearer keys accepted from upstream services (``RINGLOG_API_KEYS=a,b``).
    keys: Annotated[tuple[str, ...], NoDecode] = ()
    #: The largest request body on every route but Retell's webhooks.
    max_body_bytes: int = 1_048_576
    #: The largest body on Retell's webhook routes (``/v1/webhooks/…``). Retell's longest call
    #: (2 h) sends a ~1.4 MiB ``call_ended`` (12k words with word timings in
    #: ``transcript_object`` and ``transcript_with_tool_calls``); the scrubbed copies Retell may
    #: add can double that. 8 MiB leaves headroom and stays under the log's largest record
    #: (:data:`ringlog.streams.topics.MAX_RECORD_BYTES`).
    webhook_max_body_bytes: int = 8 * 1024 * 1024
    #: Wrong keys (bearer header, console sign-in) one client address may present per window
    #: before it is refused with 429 until the window ends (see :mod:`ringlog.api.keys`).
    max_key_failures: int = Field(default=30, ge=1)
    key_failure_window_s: float = Field(default=60.0, gt=0)
    #: FastAPI's native OpenTelemetry hooks (traces, metrics, logs through the global OTel
    #: providers). Off by default: ringlog exports Prometheus metrics itself, and the hooks
    #: cost a check of the OTel providers on every request.
    opentelemetry: bool = False

    @field_validator("keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(k.strip() for k in value.split(",") if k.strip())
        return value


class Settings(BaseModel):
    """The whole tree. Build it once with :meth:`load` and hand the parts down."""

    model_config = {"frozen": True}

    home: Path = Field(default_factory=ringlog_home)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    warehouse: WarehouseSettings = Field(default_factory=WarehouseSettings)
    sqs: SqsSettings = Field(default_factory=SqsSettings)
    crm: CrmSettings = Field(default_factory=CrmSettings)
    retell: RetellSettings = Field(default_factory=RetellSettings)
    dialog: DialogSettings = Field(default_factory=DialogSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)

    @classmethod
    def load(cls) -> Settings:
        """Read the environment and the dev stack file once; call only in a composition root."""
        return cls()

    def topic(self, name: str) -> str:
        """Return the physical topic name for a logical one (``calls`` → ``ringlog.calls``)."""
        return f"{self.kafka.topic_prefix}{name}"


#: For each part of the embedded stack, the environment variable that supplies it instead.
PART_ENV_VARS: dict[str, str] = {
    "kafka": "RINGLOG_KAFKA_BOOTSTRAP",
    "redis": "RINGLOG_REDIS_URL",
    "warehouse": "RINGLOG_SNOWFLAKE_HOST",
    "sqs": "RINGLOG_SQS_ENDPOINT_URL",
    "crm": "RINGLOG_CRM_URL",
}


def on_embedded_stack(settings: Settings) -> bool:
    """Whether ``settings`` reach the warehouse of the embedded stack: ``ringlog dev up`` started
    one under ``settings.home`` (its address file names it) and the warehouse settings point at
    it, not at one given by the environment (``RINGLOG_SNOWFLAKE_HOST``/``_PORT``)."""
    started = read_stack_file(settings.home).get("warehouse")
    if not started:
        return False
    w = settings.warehouse
    return (w.host, w.port) == (started.get("host"), started.get("port"))


def require_phone_hash_key(settings: Settings) -> None:
    """Refuse the default phone-hash key outside the embedded stack (see :func:`on_embedded_stack`).

    Every service calls this before it starts: with the public default, anyone could hash every
    possible number and read the warehouse's hashes back. Raises :class:`ConfigurationError`.
    """
    key = settings.warehouse.phone_hash_key.get_secret_value()
    if key == DEFAULT_PHONE_HASH_KEY and not on_embedded_stack(settings):
        raise ConfigurationError(
            "RINGLOG_SNOWFLAKE_PHONE_HASH_KEY is not set: the default phone-hash key is public "
            "and only allowed on the embedded stack (`ringlog dev up`); set it to a long "
            "random secret, the same for every ringlog process"
        )


def parts_given_by_environment() -> set[str]:
    """Return the stack parts (``kafka``, ``redis`` …) whose address the environment sets."""
    return {part for part, var in PART_ENV_VARS.items() if os.environ.get(var)}


def environment_variables() -> dict[str, str]:
    """Return every environment variable the settings tree reads, mapped to ``section.field``."""
    names: dict[str, str] = {}
    for section_name, field in Settings.model_fields.items():
        section = field.annotation
        if not (isinstance(section, type) and issubclass(section, _Section)):
            continue
        prefix = str(section.model_config.get("env_prefix", ""))
        for name, info in section.model_fields.items():
            alias = info.validation_alias
            env = alias if isinstance(alias, str) else f"{prefix}{name}".upper()
            names[env] = f"{section_name}.{name}"
    names[HOME_ENV] = "home"
    return names
