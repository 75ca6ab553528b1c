"""Settings: `config.toml` defaults overridden by `FLOWBOARD_<SECTION>__<KEY>` variables."""

from __future__ import annotations

import base64
import binascii
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

ENV_PREFIX = "FLOWBOARD_"
ENV_SEPARATOR = "__"


class ConfigError(Exception):
    """A setting is invalid; the message names it in one line."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    max_upload_bytes: int = Field(default=20 * 1_048_576, gt=0)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
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


class DatabaseSettings(_Section):
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


class SseSettings(_Section):
    heartbeat_seconds: float = Field(default=15.0, gt=0)
    buffer_size: int = Field(default=256, ge=1)


class StorageSettings(_Section):
    backend: Literal["local", "s3"] = "local"
    public_base_url: str = ""
    s3_bucket: str = "flowboard"
    s3_endpoint_url: str = ""
    s3_region: str = "auto"
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    s3_presign: bool = True
    s3_presign_seconds: int = Field(default=3600, gt=0)
    s3_part_bytes: int = Field(default=8 * 1_048_576, ge=5 * 1_048_576)
    # Below either floor, uploads and runs answer 507 (storage/space.py).
    min_free_bytes: int = Field(default=512 * 1_048_576, ge=0)
    min_free_percent: float = Field(default=2.0, ge=0, lt=100)


class ExecutionSettings(_Section):
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


class LocalProviderSettings(_Section):
    fps: int = Field(default=24, ge=1, le=60)
    deadline_seconds: float = Field(default=600.0, gt=0)


class VeoModelTiming(_Section):
    """One model's polling schedule; a key left out takes the `[providers.veo]` value."""

    first_poll_seconds: float | None = Field(default=None, gt=0)
    typical_seconds: float | None = Field(default=None, gt=0)
    poll_interval_seconds: float | None = Field(default=None, gt=0)
    poll_max_seconds: float | None = Field(default=None, gt=0)


class VeoSettings(_Section):
    mode: Literal["gemini", "vertex"] = "gemini"
    api_key: str = ""
    project: str = ""
    location: str = "us-central1"
    credentials_file: str = ""
    access_token: str = ""
    base_url: str = ""
    model: str = "veo-3.0-generate-001"
    # The polling schedule (providers/veo_polling.py): first poll near the earliest
    # plausible completion, every poll_interval_seconds around typical_seconds, then
    # backing off to poll_max_seconds. `models` overrides it per model name prefix.
    first_poll_seconds: float = Field(default=40.0, gt=0)
    typical_seconds: float = Field(default=90.0, gt=0)
    poll_interval_seconds: float = Field(default=20.0, gt=0)
    poll_max_seconds: float = Field(default=30.0, gt=0)
    poll_jitter: float = Field(default=0.02, ge=0, lt=1)
    # Estimates from Google's documented 11 s - 6 min latency; a `models` table in the
    # config file replaces these entries.
    models: dict[str, VeoModelTiming] = Field(
        default_factory=lambda: {
            prefix: VeoModelTiming(
                first_poll_seconds=15.0, typical_seconds=60.0, poll_interval_seconds=10.0
            )
            for prefix in ("veo-3.0-fast", "veo-3.1-fast")
        }
    )
    deadline_seconds: float = Field(default=900.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _legacy_poll_initial(cls, data: Any) -> Any:
        """Read the replaced `poll_initial_seconds` as the first poll and the interval."""
        if isinstance(data, dict) and "poll_initial_seconds" in data:
            data = dict(data)
            initial = data.pop("poll_initial_seconds")
            data.setdefault("first_poll_seconds", initial)
            data.setdefault("poll_interval_seconds", initial)
        return data

    output_gcs_uri: str = Field(default="", pattern=r"^(gs://[a-z0-9][a-z0-9._-]{2,221}/.*)?$")
    delete_gcs_output: bool = False
    storage_base_url: str = ""


class GoogleImageSettings(_Section):
    """What the gemini_image and imagen providers share (credentials: providers.veo)."""

    enabled: bool = False
    model: str = Field(default="", min_length=1)
    base_url: str = ""
    deadline_seconds: float = Field(default=300.0, gt=0)
    request_timeout_seconds: float = Field(default=120.0, gt=0)


class GeminiImageSettings(GoogleImageSettings):
    model: str = Field(default="gemini-2.5-flash-image", min_length=1)


class ImagenSettings(GoogleImageSettings):
    model: str = Field(default="imagen-4.0-generate-001", min_length=1)


class ComfyWorkflowSettings(_Section):
    file: str
    prompt: str = ""
    negative_prompt: str = ""
    image: str = ""
    width: str = ""
    height: str = ""
    frames: str = ""
    seconds: str = ""
    fps: str = ""
    seed: str = ""
    batch_size: str = ""  # image workflows: how many images (an image_gen node's count)
    output_node: str


class ComfyUISettings(_Section):
    url: str = ""
    workflow: str = "default"
    image_workflow: str = ""  # workflow of an image_gen node that names none
    workflows: dict[str, ComfyWorkflowSettings] = Field(default_factory=dict)
    deadline_seconds: float = Field(default=1800.0, gt=0)
    keep_inputs: bool = False


class ProvidersSettings(_Section):
    # Other `[providers.<name>]` tables belong to provider modules that declare their own
    # settings model: kept raw here, validated by the provider registry at start-up.
    model_config = ConfigDict(extra="allow", frozen=True)

    default: str = Field(default="local", min_length=1, max_length=64)
    image_default: str = Field(default="local", min_length=1, max_length=64)
    local: LocalProviderSettings = LocalProviderSettings()
    veo: VeoSettings = VeoSettings()
    comfyui: ComfyUISettings = ComfyUISettings()
    gemini_image: GeminiImageSettings = GeminiImageSettings()
    imagen: ImagenSettings = ImagenSettings()


class FirestoreSettings(_Section):
    enabled: bool = False
    project: str = "flowboard"
    collection: str = "flows_execution_state"
    emulator_host: str = ""


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"


class AuthSettings(_Section):
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


class NetworkSettings(_Section):
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


class InboundWebhookSettings(_Section):
    secrets: dict[str, SecretStr] = Field(default_factory=dict)
    tolerance_seconds: float = Field(default=300.0, gt=0)

    @field_validator("secrets")
    @classmethod
    def _secrets_format(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        return {name: _check_webhook_secret(secret) for name, secret in value.items()}


class WebhooksSettings(_Section):
    timeout_seconds: float = Field(default=10.0, gt=0)
    retry_schedule_seconds: list[Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0], min_length=1
    )
    poll_seconds: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=7, ge=1)
    inbound: InboundWebhookSettings = InboundWebhookSettings()

    _split = field_validator("retry_schedule_seconds", mode="before")(_split_list)


class RateLimitSettings(_Section):
    enabled: bool = True
    run_per_minute: float = Field(default=60.0, gt=0)
    burst: int = Field(default=20, ge=1)


class CanvasSettings(_Section):
    max_nodes: int = Field(default=2_000, ge=1)
    max_edges: int = Field(default=10_000, ge=0)
    max_flow_bytes: int = Field(default=4 * 1_048_576, ge=1024, le=15 * 1_048_576)


class PriceSettings(_Section):
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


class CostSettings(_Section):
    """The price table (flowboard/costs/): rows "<provider>" or "<provider>:<model>"."""

    unit: str = Field(default="USD", min_length=1, max_length=16)
    prices: dict[str, PriceSettings] = Field(default_factory=_example_prices)


class QueueSettings(_Section):
    """Per-provider concurrency limits (flowboard/runs/queue.py)."""

    # provider name -> jobs it runs at once (absent or 0: no limit)
    limits: dict[str, int] = Field(default_factory=dict)
    eta_window: int = Field(default=20, ge=1)  # recent runs the ETA's median is taken over


class Settings(_Section):
    """Every setting of the service; see config.toml for the meaning of each."""

    data_dir: str = "./data"
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    sse: SseSettings = SseSettings()
    storage: StorageSettings = StorageSettings()
    execution: ExecutionSettings = ExecutionSettings()
    providers: ProvidersSettings = ProvidersSettings()
    firestore: FirestoreSettings = FirestoreSettings()
    logging: LoggingSettings = LoggingSettings()
    auth: AuthSettings = AuthSettings()
    network: NetworkSettings = NetworkSettings()
    webhooks: WebhooksSettings = WebhooksSettings()
    ratelimit: RateLimitSettings = RateLimitSettings()
    canvas: CanvasSettings = CanvasSettings()
    costs: CostSettings = CostSettings()
    queue: QueueSettings = QueueSettings()
    # Python modules imported at start-up that add node types (`NODE_TYPE`) or a
    # provider (`SPEC`) without changing Flowboard itself.
    plugins: list[str] = Field(default_factory=list)

    _split_plugins = field_validator("plugins", mode="before")(_split_list)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()


def _apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "FLOWBOARD_CONFIG":
            continue
        path = name[len(ENV_PREFIX) :].lower().split(ENV_SEPARATOR)
        node = raw
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"config error: {name}: {part} is not a section")
            node = child
        node[path[-1]] = value


def _merge(target: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


_SECRET_WORDS = ("secret", "key", "token", "password")


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "config"
    value = first.get("input")
    shown = f" (got {value!r})" if isinstance(value, str | int | float | bool) else ""
    if first["type"] == "extra_forbidden" or any(w in where.lower() for w in _SECRET_WORDS):
        shown = ""  # a secret setting, or a mistyped name of one, must not print its value
    return f"config error: {where}: {first['msg']}{shown}"


# Settings that name files: relative values in a config file mean "beside that file"
# ("*" stands for any table name).
FILE_SETTINGS = (
    ("data_dir",),
    ("providers", "veo", "credentials_file"),
    ("providers", "comfyui", "workflows", "*", "file"),
)


def config_path(explicit: Path | None, environ: Mapping[str, str]) -> Path | None:
    """The config file to read: --config, else FLOWBOARD_CONFIG, else ./config.toml if any."""
    if explicit is not None:
        return explicit
    if environ.get("FLOWBOARD_CONFIG"):
        return Path(environ["FLOWBOARD_CONFIG"])
    default = Path("config.toml")
    return default if default.is_file() else None


def _resolve_files(node: Any, keys: tuple[str, ...], base: Path) -> None:
    """Make the relative file settings under `node` absolute against `base`."""
    if not isinstance(node, dict) or not keys:
        return
    first, rest = keys[0], keys[1:]
    children = list(node) if first == "*" else [first]
    for name in children:
        value = node.get(name)
        if rest:
            _resolve_files(value, rest, base)
        elif isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            node[name] = str((base / value).resolve())


def _read_file(path: Path) -> dict[str, Any]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config error: file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config error: {path}: {exc}") from exc
    base = path.resolve().parent
    for keys in FILE_SETTINGS:
        _resolve_files(raw, keys, base)
    return raw


def load_settings(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read the TOML file (if any), apply env overrides, then explicit overrides.

    Relative file settings of the TOML file resolve against the file's folder; those
    of the environment and the overrides against the working directory.
    """
    env = os.environ if environ is None else environ
    if path is None and env.get("FLOWBOARD_CONFIG"):
        path = Path(env["FLOWBOARD_CONFIG"])
    raw: dict[str, Any] = {} if path is None else _read_file(path)
    _apply_env(raw, env)
    _merge(raw, overrides or {})
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc
