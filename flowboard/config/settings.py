"""Every section of the settings, and `Settings`, the whole of them."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SecretStr,
    field_validator,
)

from flowboard.config.base import Section
from flowboard.config.providers import ProvidersSettings


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    max_upload_bytes: int = Field(default=20 * 1_048_576, gt=0)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    # SIGTERM ends serve within this, gracefully or else hard (logging every thread's stack).
    stop_timeout_seconds: float = Field(default=45.0, gt=0)
    # uvloop's event loop (libuv) costs about half the CPU per socket operation.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    # A connection's first request head must arrive within this (slow-header clients).
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    # An idle kept-alive connection's next request head must arrive within this.
    keepalive_seconds: float = Field(default=75.0, gt=0)
    # Open connections per client address (event streams included); 0 = no cap.
    max_connections_per_address: int = Field(default=1024, ge=0)
    # Largest uploaded image (width x height), checked before decoding its pixels.
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    # Threads decoding uploaded images, off the event loop; more uploads wait for one.
    decode_threads: int = Field(default=2, ge=1)


class DatabaseSettings(Section):
    uri: str = ""
    name: str = "flowboard"
    startup_timeout_seconds: float = Field(default=20.0, gt=0)
    # Short timeouts: a dead or hung database answers 503 within seconds, not after 20 s.
    server_selection_timeout_seconds: float = Field(default=2.0, gt=0)
    socket_timeout_seconds: float = Field(default=5.0, gt=0)
    connect_timeout_seconds: float = Field(default=2.0, gt=0)
    ping_timeout_seconds: float = Field(default=1.0, gt=0)
    health_interval_seconds: float = Field(default=1.0, gt=0)
    retry_after_seconds: int = Field(default=5, ge=1)
    restart_backoff_seconds: float = Field(default=0.5, ge=0)
    restart_backoff_max_seconds: float = Field(default=5.0, ge=0)
    max_restarts: int = Field(default=5, ge=0)
    restart_window_seconds: float = Field(default=120.0, gt=0)


class SseSettings(Section):
    heartbeat_seconds: float = Field(default=15.0, gt=0)
    buffer_size: int = Field(default=256, ge=1)


class ClusterSettings(Section):
    """Several servers on one database (docs/deploy.md, "Several servers")."""

    # Share stream events and tickets through the database; off: in memory (one server).
    enabled: bool = False
    # How long the shared event log keeps an event for Last-Event-ID replay.
    event_retention_seconds: float = Field(default=3600.0, gt=0)


class StorageSettings(Section):
    backend: Literal["local", "s3"] = "local"
    # Media URLs a node stores must pass safe_url.py's rule: an absolute http(s) URL here.
    public_base_url: str = Field(default="", pattern=r"^(https?://[^/?#\s]+.*)?$")
    s3_bucket: str = "flowboard"
    s3_endpoint_url: str = ""
    s3_region: str = "auto"
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    s3_presign: bool = True
    s3_presign_seconds: int = Field(default=3600, gt=0)
    s3_part_bytes: int = Field(default=8 * 1_048_576, ge=5 * 1_048_576)
    # Below either floor, uploads and runs answer 507 (storage/space.py).
    # Local media (data_dir/media) is one directory every server mounts (several servers).
    shared_media: bool = False
    min_free_bytes: int = Field(default=512 * 1_048_576, ge=0)
    min_free_percent: float = Field(default=2.0, ge=0, lt=100)


class ExecutionSettings(Section):
    max_concurrent_nodes: int = Field(default=4, ge=1)
    progress_min_interval_seconds: float = Field(default=0.25, ge=0)
    # Estimated progress (a guess from elapsed time, e.g. Veo's) carries no news between
    # polls; stored more often it costs writes, not information.
    estimated_progress_interval_seconds: float = Field(default=10.0, ge=0)
    # ... and only once it has grown by this many points: late in a run the guess creeps
    # up by a point a poll, which would be two writes and two events a poll for a hint.
    estimated_progress_step: float = Field(default=5.0, ge=0, le=100)
    handler_attempts: int = Field(default=3, ge=1)
    handler_backoff_seconds: float = Field(default=0.2, ge=0)
    reaper_seconds: float = Field(default=30.0, gt=0)
    provider_attempts: int = Field(default=5, ge=1)
    provider_backoff_seconds: float = Field(default=1.0, ge=0)
    provider_backoff_max_seconds: float = Field(default=60.0, ge=0)


class FirestoreSettings(Section):
    enabled: bool = False
    project: str = "flowboard"
    collection: str = "flows_execution_state"
    emulator_host: str = ""


class WatchdogSettings(Section):
    # An event loop that has not run this long is logged with every thread's stack.
    stall_seconds: float = Field(default=10.0, gt=0)
    # An event loop that has not run this long ends the process (0: never).
    exit_after_seconds: float = Field(default=60.0, ge=0)


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"


class AuthSettings(Section):
    enabled: bool = True
    metrics_public: bool = True
    ticket_seconds: int = Field(default=60, ge=1, le=3600)
    jwt_issuer: str = ""
    jwt_audience: str = ""
    jwt_jwks_url: str = ""
    jwt_public_key: str = ""
    jwt_secret: SecretStr = SecretStr("")
    jwt_algorithms: str = "RS256,ES256,HS256"
    jwt_org_claim: str = Field(default="org_id", min_length=1)
    jwt_leeway_seconds: float = Field(default=30.0, ge=0)


def _split_list(value: Any) -> Any:
    """A list setting given as one string (an environment variable): comma-separated."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class NetworkSettings(Section):
    allow: list[str] = Field(default_factory=list)

    _split = field_validator("allow", mode="before")(_split_list)


def _check_webhook_secret(value: SecretStr) -> SecretStr:
    raw = value.get_secret_value()
    try:
        decoded = base64.b64decode(raw.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if not raw.startswith("whsec_") or not decoded:
        raise ValueError("must look like whsec_<base64>")
    return value


class InboundWebhookSettings(Section):
    secrets: dict[str, SecretStr] = Field(default_factory=dict)
    tolerance_seconds: float = Field(default=300.0, gt=0)

    @field_validator("secrets")
    @classmethod
    def _secrets_format(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        return {name: _check_webhook_secret(secret) for name, secret in value.items()}


class WebhooksSettings(Section):
    timeout_seconds: float = Field(default=10.0, gt=0)
    retry_schedule_seconds: list[Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0], min_length=1
    )
    poll_seconds: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=7, ge=1)
    inbound: InboundWebhookSettings = InboundWebhookSettings()

    _split = field_validator("retry_schedule_seconds", mode="before")(_split_list)


class RateLimitSettings(Section):
    enabled: bool = True
    run_per_minute: float = Field(default=60.0, gt=0)
    burst: int = Field(default=20, ge=1)


class CanvasSettings(Section):
    max_nodes: int = Field(default=2_000, ge=1)
    max_edges: int = Field(default=10_000, ge=0)
    max_flow_bytes: int = Field(default=4 * 1_048_576, ge=1024, le=15 * 1_048_576)


class PriceSettings(Section):
    """One price row, in cost units: per second of video, per image, per run."""

    per_second: float = Field(default=0.0, ge=0)
    per_image: float = Field(default=0.0, ge=0)
    per_run: float = Field(default=0.0, ge=0)


def _example_prices() -> dict[str, PriceSettings]:
    """EXAMPLE figures (config.toml repeats them): set your own, they are not list prices."""
    return {
        "veo": PriceSettings(per_second=0.40),
        "veo:veo-3.0-fast-generate-001": PriceSettings(per_second=0.15),
        "gemini_image": PriceSettings(per_image=0.039),
        "imagen": PriceSettings(per_image=0.04),
    }


class CostSettings(Section):
    """The price table (flowboard/costs/): rows "<provider>" or "<provider>:<model>"."""

    unit: str = Field(default="USD", min_length=1, max_length=16)
    prices: dict[str, PriceSettings] = Field(default_factory=_example_prices)


class QueueSettings(Section):
    """Per-provider concurrency limits (flowboard/runs/queue.py)."""

    # provider name -> jobs it runs at once (absent or 0: no limit)
    limits: dict[str, int] = Field(default_factory=dict)
    eta_window: int = Field(default=20, ge=1)  # recent runs the ETA's median is taken over


class RetentionSettings(Section):
    # A node's takes kept: at most this many, and none older than this (None: every one,
    # forever). The newest take and any take a flow node names are always kept.
    keep_last_takes: int | None = Field(default=None, ge=1)
    takes_days: float | None = Field(default=None, gt=0)
    # `flowboard gc` leaves alone anything younger: a job's file is written before its
    # asset record names it, an edit's flow parts before the flow's head.
    grace_seconds: float = Field(default=3600.0, ge=0)


class AuditSettings(Section):
    # Records older than this are removed by the database (a TTL index on their time).
    retention_days: int = Field(default=400, ge=1, le=36_500)


class Settings(Section):
    """Every setting of the service; see config.toml for the meaning of each."""

    data_dir: str = "./data"
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    sse: SseSettings = SseSettings()
    cluster: ClusterSettings = ClusterSettings()
    storage: StorageSettings = StorageSettings()
    execution: ExecutionSettings = ExecutionSettings()
    providers: ProvidersSettings = ProvidersSettings()
    firestore: FirestoreSettings = FirestoreSettings()
    logging: LoggingSettings = LoggingSettings()
    watchdog: WatchdogSettings = WatchdogSettings()
    auth: AuthSettings = AuthSettings()
    network: NetworkSettings = NetworkSettings()
    webhooks: WebhooksSettings = WebhooksSettings()
    ratelimit: RateLimitSettings = RateLimitSettings()
    canvas: CanvasSettings = CanvasSettings()
    costs: CostSettings = CostSettings()
    queue: QueueSettings = QueueSettings()
    audit: AuditSettings = AuditSettings()
    retention: RetentionSettings = RetentionSettings()
    # Python modules imported at start-up that add node types (`NODE_TYPE`) or a
    # provider (`SPEC`) without changing Flowboard itself.
    plugins: list[str] = Field(default_factory=list)

    _split_plugins = field_validator("plugins", mode="before")(_split_list)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()
