"""Process settings, read from the environment and an optional `.env` file.

Built per process by `load_settings()` and passed down; nothing reads the environment at import time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

RecordingConsentMode = Literal["auto", "always", "never"]
AudioFormat = Literal["pcmu", "pcm16"]
DeployEnvironment = Literal["development", "production"]
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# BUSINESS_API_BASE=demo: the built-in demo office on purpose (never the silent default).
DEMO_BUSINESS = "demo"


class Settings(BaseSettings):
    """Everything a relay, worker or beat process needs to know about its environment."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # --- OpenAI Realtime -------------------------------------------------------------------------------
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = Field(
        default=None, description="The openai SDK's own OPENAI_BASE_URL; the Realtime socket follows it."
    )
    realtime_model: str = "gpt-realtime-mini"
    realtime_model_hard: str = Field(
        default="gpt-realtime", description="The full model, for calls a routing rule marks as harder."
    )
    realtime_voice: str = "marin"
    realtime_audio_format: AudioFormat = "pcmu"
    transcription_model: str | None = Field(
        default="gpt-4o-mini-transcribe",
        description="Caller-side transcription for the stored transcript; empty disables it.",
    )
    vad_silence_ms: int = Field(default=500, ge=100, le=3000)

    # --- Twilio ----------------------------------------------------------------------------------------
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_phone_number: str | None = None
    twilio_api_base_url: str = "https://api.twilio.com"
    stream_affinity: Literal["none", "fly-replay"] = Field(
        default="none",
        description="fly-replay: the stream URL names this machine, and a stream landing elsewhere is "
        "replayed to it by Fly's proxy (so it finds its pre-opened session).",
    )
    fly_machine_id: str | None = None
    public_base_url: str | None = Field(
        default=None,
        description="Public https origin Twilio calls; signatures are checked against it, not proxy headers.",
    )

    # --- Business backend and escalation ---------------------------------------------------------------
    business_api_base: str | None = Field(
        default=None, description="The business backend's base URL, or `demo` for the built-in demo office."
    )
    business_api_token: SecretStr | None = Field(
        default=None, description="Sent as `Authorization: Bearer` on every business backend request."
    )
    business_name: str = "Bright Smile Dental"
    business_timezone: str = "America/New_York"
    human_transfer_number: str | None = None
    transfer_ring_seconds: int = Field(default=20, ge=5, le=60)
    emergency_number: str = Field(
        default="911",
        pattern=r"^[0-9+*#]{2,16}$",
        description="What a caller in an emergency is told to dial when no person can take the call.",
    )
    hard_caller_numbers: str = Field(
        default="", description="Comma-separated caller numbers routed to the full model from the start."
    )

    # --- The business's profile, and the number's fallback --------------------------------------------
    business_kind: str = Field(
        default="dental office", description="What the business is, in a few words (fills the prompts)."
    )
    business_description: str = Field(
        default="", description="Optional sentences about the business the agent may tell callers."
    )
    services_refresh_seconds: float = Field(
        default=300.0, ge=10, description="How often the relay re-reads GET /services from the backend."
    )
    voice_fallback_url: str | None = Field(
        default=None,
        description="The number's voice fallback URL; default PUBLIC_BASE_URL/twilio/fallback.",
    )

    # --- Cost and call limits --------------------------------------------------------------------------
    max_call_seconds: float = Field(default=600.0, ge=10)
    max_call_warning_seconds: float = Field(default=30.0, ge=0, description="Heads-up before the cap.")
    idle_prompt_seconds: float = Field(default=8.0, gt=0)
    idle_hangup_seconds: float = Field(default=20.0, gt=0)
    goodbye_timeout_seconds: float = Field(
        default=8.0, gt=0, description="Longest wait for a goodbye (or hand-off line) to finish playing."
    )
    model_reconnect_attempts: int = Field(default=4, ge=0, le=10)
    max_calls_per_caller: int = Field(default=2, ge=1, description="Concurrent calls one number may hold.")
    max_calls_per_caller_per_hour: int = Field(
        default=10, ge=1, description="Calls one number may start in any rolling hour."
    )

    # --- Recording ---------------------------------------------------------------------------------------
    recording_enabled: bool = False
    recording_consent: RecordingConsentMode = "auto"

    # --- Storage and queues ----------------------------------------------------------------------------
    database_url: str = "sqlite:///./var/voice_agent.db"
    redis_url: str | None = None
    data_dir: Path = Path("./var")
    heartbeat_seconds: float = Field(default=5.0, gt=0, le=60)
    stuck_call_seconds: float = Field(
        default=90.0, gt=0, description="A live call silent this long is swept as abandoned."
    )
    sweep_interval_seconds: float = Field(default=30.0, gt=0)
    retention_days: int = Field(
        default=90, ge=1, description="Calls, transcripts, notes and recordings older than this are deleted."
    )
    voice_agent_env: DeployEnvironment = "development"
    fly_app_name: str | None = Field(default=None, description="Set by Fly.io: this is a production deploy.")

    # --- Post-call work --------------------------------------------------------------------------------
    summary_model: str = "gpt-4o-mini"
    crm_webhook_url: str | None = None
    crm_webhook_secret: SecretStr | None = None
    summary_webhook_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    summary_email_from: str | None = None
    summary_email_to: str | None = Field(default=None, description="Comma-separated back-office addresses.")

    # --- Monitoring (metrics listeners and Flower; never on the public port) ---------------------------
    metrics_host: str = Field(
        default="0.0.0.0",
        description="Address the relay's and workers' metrics listeners bind; the ports must stay private "
        "(on Fly.io set '::', the private network is IPv6, and keep the ports out of any service).",
    )
    metrics_port: int = Field(default=9091, ge=0, le=65535, description="The relay's metrics port; 0: off.")
    worker_metrics_port: int = Field(
        default=9092, ge=0, le=65535, description="A worker's metrics port (`--metrics-port`); 0: off."
    )
    flower_basic_auth: SecretStr | None = Field(
        default=None, description="`user:password[,user2:password2]`; `voice-agent flower` refuses without."
    )
    flower_port: int = Field(default=5555, ge=1, le=65535)
    flower_address: str = Field(
        default="127.0.0.1", description="Flower's bind address (fly.toml sets '::', the private network)."
    )

    # --- Relay behaviour -------------------------------------------------------------------------------
    tool_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    tool_filler_after_seconds: float = Field(default=1.0, gt=0, le=10)
    preopen_ttl_seconds: float = Field(
        default=8.0, gt=0, le=60, description="Close a pre-opened model session whose stream never came."
    )
    max_frame_bytes: int = Field(default=64 * 1024, ge=1024)
    max_live_calls: int = Field(
        default=40,
        ge=1,
        description="Calls one relay process takes; more get 503 so Twilio uses the number's fallback URL.",
    )
    drain_seconds: float = Field(
        default=280.0, ge=0, description="On SIGTERM, how long live calls may go on (under kill_timeout)."
    )
    # --- The public edge (webhooks and media streams) ------------------------------------------------
    stream_token_ttl_seconds: float = Field(
        default=60.0, gt=0, le=600, description="A stream token is good this long after its webhook, once."
    )
    stream_start_timeout_seconds: float = Field(
        default=5.0, gt=0, le=60, description="A signed stream that sends no `start` by then is closed."
    )
    max_webhook_body_bytes: int = Field(
        default=32 * 1024, ge=4096, le=1024 * 1024, description="Larger request bodies get 413 unread."
    )
    http_read_timeout_seconds: float = Field(
        default=10.0, gt=0, le=120, description="A request's headers, and then its body, must arrive by then."
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Comma-separated proxy addresses or networks whose X-Forwarded-For/-Proto are trusted.",
    )
    prompts_dir: Path = Path(__file__).resolve().parent.parent / "prompts"

    # --- Back office -----------------------------------------------------------------------------------
    backoffice_token: SecretStr | None = Field(
        default=None,
        description="Enables /backoffice and /api; the API's bearer token and the staff sign-in password.",
    )
    log_level: str = "INFO"
    log_json: bool = False

    @field_validator(
        "openai_base_url",
        "public_base_url",
        "business_api_base",
        "redis_url",
        "crm_webhook_url",
        "summary_webhook_url",
        "smtp_host",
        "backoffice_token",
        "flower_basic_auth",
        "voice_fallback_url",
        "openai_api_key",
        "twilio_account_sid",
        "twilio_auth_token",
        "business_api_token",
        "crm_webhook_secret",
        "smtp_password",
        "fly_app_name",
        "transcription_model",  # empty disables caller transcription
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("public_base_url", "twilio_api_base_url", "business_api_base", "openai_base_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    # --- Checks that name the variable and what it accepts (see app/settings_errors.py) ------------------
    @field_validator(
        "openai_base_url",
        "twilio_api_base_url",
        "crm_webhook_url",
        "summary_webhook_url",
        "business_api_base",
    )
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or value == DEMO_BUSINESS:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expects an http(s) URL such as https://host.example.com/path")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("expects a redis://, rediss:// or unix:// URL such as redis://localhost:6379/0")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        try:
            backend = make_url(value).get_backend_name()
        except ArgumentError:
            backend = ""
        if backend not in ("sqlite", "postgresql", "postgres"):
            raise ValueError("expects postgresql://user:pass@host/db or sqlite:///path/to/file.db")
        return value

    @field_validator("business_timezone")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("expects an IANA time zone name such as America/New_York") from None
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: object) -> object:
        level = str(value).strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"expects one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("data_dir")
    @classmethod
    def _writable_dir(cls, value: Path) -> Path:
        # The nearest folder that exists must let us create (or write in) DATA_DIR: the outbox journal,
        # embedded queue and SQLite file live there, and finding out at the first call loses that call.
        probe = value.expanduser().absolute()
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
            raise ValueError(f"expects a writable folder ({probe} is not writable by this user)")
        return value

    @model_validator(mode="after")
    def _public_url_is_https_in_production(self) -> Settings:
        url = self.public_base_url
        if url and not url.startswith(("https://", "http://")):
            raise ValueError("PUBLIC_BASE_URL must be an origin such as https://agent.example.com")
        return self

    @model_validator(mode="after")
    def _recording_needs_consent(self) -> Settings:
        if self.recording_enabled and self.recording_consent == "never":
            raise ValueError(
                "RECORDING_CONSENT=never is refused while RECORDING_ENABLED is on: callers in two-party "
                "consent states must hear the recording notice (use auto or always)"
            )
        if self.idle_hangup_seconds <= self.idle_prompt_seconds:
            raise ValueError("IDLE_HANGUP_SECONDS must be longer than IDLE_PROMPT_SECONDS")
        return self

    @field_validator("backoffice_token")
    @classmethod
    def _backoffice_token_is_long(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("BACKOFFICE_TOKEN must be at least 16 characters (try: openssl rand -hex 24)")
        return value

    def is_production(self) -> bool:
        """True on a production deploy (Fly.io sets FLY_APP_NAME; elsewhere VOICE_AGENT_ENV=production)."""
        return self.voice_agent_env == "production" or self.fly_app_name is not None

    def production_problems(self) -> list[str]:
        """Why these settings would lose data in production (empty when fine or not in production)."""
        if not self.is_production():
            return []
        problems = []
        if self.database_url.startswith("sqlite"):
            problems.append(
                "DATABASE_URL: production refuses SQLite: relay, workers and beat run on separate machines "
                "and each would keep its own file, so calls stored by one are lost to the others "
                "(use postgresql://)"
            )
        if self.redis_url is None:
            problems.append(
                "REDIS_URL: production needs Redis: without it each machine queues events on its own disk, "
                "where the workers on other machines never see them (set redis:// or rediss://)"
            )
        return problems

    def hard_callers(self) -> frozenset[str]:
        """Caller numbers routed to the full model."""
        return frozenset(n.strip() for n in self.hard_caller_numbers.split(",") if n.strip())

    # --- Derived values --------------------------------------------------------------------------------
    def stream_url(self, fallback_origin: str) -> str:
        """The wss URL written into the TwiML; Twilio signs the upgrade over exactly this string."""
        path = "/twilio/stream"
        if self.stream_affinity == "fly-replay" and self.fly_machine_id:
            path += "/" + self.fly_machine_id
        return self.ws_origin(fallback_origin) + path

    def ws_origin(self, fallback_origin: str) -> str:
        """The public origin with a ws/wss scheme."""
        origin = self.public_base_url or fallback_origin.rstrip("/")
        if origin.startswith("https://"):
            return "wss://" + origin[len("https://") :]
        if origin.startswith("http://"):
            return "ws://" + origin[len("http://") :]
        return origin

    def auth_token(self) -> str:
        """The Twilio auth token, or an error that says how to set it."""
        if self.twilio_auth_token is None or not self.twilio_auth_token.get_secret_value():
            raise MissingSettingError("TWILIO_AUTH_TOKEN", "needed to check Twilio signatures")
        return self.twilio_auth_token.get_secret_value()


class SettingsError(RuntimeError):
    """Settings the requested command refuses to run with; `problems` holds one line per setting."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class MissingSettingError(SettingsError):
    """A setting the requested job cannot run without."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__([f"{name} is not set: {why}"])
        self.name = name


def load_settings(**overrides: object) -> Settings:
    """Build the settings for this process; keyword overrides win over the environment."""
    return Settings(**overrides)  # type: ignore[arg-type]
