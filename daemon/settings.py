"""Settings: ``settings.toml`` first, then ``AOMD_*`` environment variables.

Why pydantic-settings: it gives typed validation with field paths in the error, env
nesting with ``__`` and ``SecretStr`` that never prints, which is exactly the contract an
operator needs (``AOMD_ACCOUNTS__0__SK_FILE=/run/credentials/aomd/sk``).

Secrets can come from files (``*_file`` fields) so systemd ``LoadCredential`` and
Kubernetes secret mounts work without putting secrets in the environment.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from daemon.kernel.errors import ConfigError

DEFAULT_CONFIG = Path("settings.toml")
ENV_CONFIG = "AOMD_CONFIG"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Endpoints(_Frozen):
    """Explicit endpoints override the ones derived from ``region``."""

    aom: str | None = None
    """Base URL of AOM, e.g. ``https://aom.cn-north-4.myhuaweicloud.com``."""
    dataarts: str | None = None
    """Base URL of DataArts Studio, e.g. ``https://dayu.cn-north-4.myhuaweicloud.com``."""


class Account(_Frozen):
    """One cloud account/project aomd acts on."""

    name: str = "default"
    region: str | None = None
    endpoints: Endpoints = Endpoints()
    project_id: str
    """The IAM project id: exactly 32 characters (every AOM path starts with it)."""
    emulator: bool = False
    """Run against the embedded emulator instead of the cloud (the default demo mode)."""
    token: SecretStr | None = None
    token_file: Path | None = None
    ak: SecretStr | None = None
    ak_file: Path | None = None
    sk: SecretStr | None = None
    sk_file: Path | None = None
    workspace: str | None = None
    """DataArts Studio workspace id, sent as the ``workspace`` header."""
    enterprise_project_id: str | None = Field(default=None, min_length=1, max_length=64)
    """Sent as ``x_enterprise_project_id`` where the API takes it (ListWorkflowExecutions),
    for accounts whose workflows live in an enterprise project."""
    requests_per_second: float = Field(default=10.0, gt=0)
    """Client-side token bucket; conservative so aomd never starves humans of API quota."""
    burst: int = Field(default=20, ge=1)
    max_concurrency: int = Field(default=16, ge=1, le=1024)
    """Connection pool size and in-flight request cap."""
    timeout_seconds: float = Field(default=10.0, gt=0)
    """Per-call total timeout."""
    read_retries: int = Field(default=4, ge=0, le=20)

    @field_validator("project_id")
    @classmethod
    def _project_id(cls, value: str) -> str:
        if len(value) != 32:
            raise ValueError(
                f"project_id must be exactly 32 characters (got {len(value)}); expected the "
                "IAM project id of the region, e.g. 0123456789abcdef0123456789abcdef (console: "
                "My Credentials > API Credentials)"
            )
        return value

    @model_validator(mode="after")
    def _one_auth(self) -> Account:
        if self.emulator:
            return self
        has_token = self.token is not None or self.token_file is not None
        has_aksk = (self.ak is not None or self.ak_file is not None) and (
            self.sk is not None or self.sk_file is not None
        )
        if not (has_token or has_aksk):
            raise ValueError(
                f"account {self.name!r}: set token (or token_file), or ak and sk "
                "(or ak_file and sk_file)"
            )
        if self.region is None and self.endpoints.aom is None:
            raise ValueError(f"account {self.name!r}: set region or endpoints.aom")
        return self

    def aom_endpoint(self) -> str:
        if self.endpoints.aom:
            return self.endpoints.aom.rstrip("/")
        return f"https://aom.{self.region}.myhuaweicloud.com"

    def dataarts_endpoint(self) -> str:
        if self.endpoints.dataarts:
            return self.endpoints.dataarts.rstrip("/")
        if self.region is None:
            return self.aom_endpoint()
        return f"https://dayu.{self.region}.myhuaweicloud.com"

    def secret(self, kind: Literal["token", "ak", "sk"]) -> SecretStr | None:
        """The secret from its inline value or its file (file content stripped)."""
        value: SecretStr | None = getattr(self, kind)
        if value is not None:
            return value
        path: Path | None = getattr(self, f"{kind}_file")
        if path is None:
            return None
        try:
            return SecretStr(path.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise ConfigError(
                f"account {self.name!r}: cannot read {kind}_file {str(path)!r}: "
                f"{exc.strerror}; fix the path or its permissions",
                source=str(path),
            ) from None


class LogSettings(_Frozen):
    format: Literal["auto", "json", "console"] = "auto"
    """``auto``: console on a terminal, JSON lines otherwise."""
    level: Literal["debug", "info", "warning", "error"] = "info"


class HttpSettings(_Frozen):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)


class WatchSettings(_Frozen):
    fast_interval: float = Field(default=5.0, gt=0)
    """Poll period for workflows with an active execution."""
    slow_interval: float = Field(default=60.0, gt=0)
    """Poll period for idle workflows."""
    discovery_interval: float = Field(default=300.0, gt=0)
    """How often the workflow list is refreshed."""
    concurrency: int = Field(default=8, ge=1)


class SafetySettings(_Frozen):
    dry_run: bool = False
    max_writes_per_minute: int = Field(default=60, ge=1)
    max_writes_per_minute_per_workflow: int = Field(default=10, ge=1)
    breaker_error_ratio: float = Field(default=0.5, gt=0, le=1)
    breaker_min_calls: int = Field(default=10, ge=1)
    breaker_cooldown_seconds: float = Field(default=60.0, gt=0)


class JournalSettings(_Frozen):
    path: Path | None = None
    """SQLite file; default ``<state_dir>/journal.sqlite3``."""
    retention_days: int = Field(default=90, ge=1)


class LeaderSettings(_Frozen):
    enabled: bool = False
    lease_name: str = "aomd"
    namespace: str | None = None
    identity: str | None = None
    lease_seconds: float = 15.0
    renew_seconds: float = 5.0
    api_server: str | None = None
    """Kubernetes API URL when not running in a pod (default: the in-cluster config)."""
    token_file: Path | None = None
    """Bearer token file for ``api_server`` (in a pod the service account is used)."""


class EmulatorSettings(_Frozen):
    """The embedded emulator used by accounts with ``emulator = true`` (no cloud needed)."""

    scenario: Path | None = None
    """Scenario file; default: the bundled demo scenario."""
    speed: float = Field(default=1.0, ge=0)
    """Emulated seconds per real second (the daemon's clock follows it)."""
    seed: int = 7
    start: datetime | None = None
    """Emulated instant the emulator starts at (default: now). ``aomd demo`` starts just
    before a maintenance window so a freeze happens within the first minute."""


class Settings(BaseSettings):
    """Everything configurable. See README "Configuration" for the full table."""

    model_config = SettingsConfigDict(
        env_prefix="AOMD_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    accounts: list[Account] = Field(
        default_factory=lambda: [Account(name="emulator", project_id="0" * 32, emulator=True)]
    )
    state_dir: Path = Path("state")
    policies_dir: Path = Path("policies")
    log: LogSettings = LogSettings()
    http: HttpSettings = HttpSettings()
    watch: WatchSettings = WatchSettings()
    safety: SafetySettings = SafetySettings()
    journal: JournalSettings = JournalSettings()
    leader: LeaderSettings = LeaderSettings()
    emulator: EmulatorSettings = EmulatorSettings()
    reconcile_interval: float = Field(default=300.0, gt=0)
    """Safety-net period (real seconds) for the trigger and schedule reconcilers, on top of
    the wake-ups at each calendar transition and fire time."""
    notify_webhook: str | None = None
    """Global webhook for give-up, terminate and unhandled-pause notifications."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # env beats the file (passed as init kwargs), as the issue asks; list items are
        # addressed by index (AOMD_ACCOUNTS__0__SK_FILE), which pydantic-settings alone
        # reads as a dict, so the two are merged here.
        return (_EnvOverFile(settings_cls, env_settings, init_settings),)

    _missing_config: Path | None = PrivateAttr(default=None)
    """Set by ``load_settings`` when no settings file was found (the defaults are used)."""

    def journal_path(self) -> Path:
        return self.journal.path or self.state_dir / "journal.sqlite3"

    def warnings(self) -> list[str]:
        """Valid but probably unintended; ``aomd validate`` prints them, the daemon logs
        them as ``config_warning`` events."""
        out: list[str] = []
        if self._missing_config is not None:
            out.append(
                f"no settings file at {self._missing_config}: running on the built-in "
                "emulator account (no cloud is called); pass --config FILE or set "
                "$AOMD_CONFIG for a real account"
            )
        for account in self.accounts:
            for kind in ("token", "ak", "sk"):
                path: Path | None = getattr(account, f"{kind}_file")
                if getattr(account, kind) is None and path is not None and _blank(path):
                    out.append(
                        f"account {account.name!r}: {kind}_file {str(path)!r} is empty; "
                        "every request would be refused (401): write the secret into it"
                    )
        return out


class _EnvOverFile(PydanticBaseSettingsSource):
    """File values, overridden by env values, with ``__<index>__`` reaching list items."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        env: PydanticBaseSettingsSource,
        file: PydanticBaseSettingsSource,
    ) -> None:
        super().__init__(settings_cls)
        self._env = env
        self._file = file

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything happens in __call__

    def __call__(self) -> dict[str, Any]:
        merged: dict[str, Any] = _merge(self._file(), self._env())
        return merged


def _merge(base: Any, over: Any) -> Any:
    if isinstance(over, dict) and over and all(k.isdigit() for k in over) and base is None:
        base = []  # AOMD_ACCOUNTS__0__... with no accounts in the file: build the list
    if isinstance(over, dict) and isinstance(base, list) and all(k.isdigit() for k in over):
        merged = list(base)
        for key, value in sorted(over.items(), key=lambda kv: int(kv[0])):
            i = int(key)
            if i < len(merged):
                merged[i] = _merge(merged[i], value)
            elif i == len(merged):
                merged.append(value)
            else:
                raise ValueError(f"list index {i} skips items (have {len(merged)})")
        return merged
    if isinstance(over, dict) and isinstance(base, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = _merge(base.get(key), value)
        return out
    return over


def _blank(path: Path) -> bool:
    """An existing file with nothing but whitespace (an unreadable one is an error later)."""
    try:
        return path.is_file() and not path.read_bytes().strip()
    except OSError:
        return False


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get(ENV_CONFIG)
    return Path(env) if env else DEFAULT_CONFIG


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read settings; raise ``ConfigError`` naming the file and field on any problem."""
    cfg = config_path(path)
    data: dict[str, Any] = {}
    explicit = path is not None or ENV_CONFIG in os.environ
    if cfg.exists():
        try:
            data = tomllib.loads(cfg.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{cfg}: invalid TOML: {exc}", source=str(cfg)) from None
    elif explicit:
        raise ConfigError(
            f"{cfg}: settings file not found; pass an existing --config", source=str(cfg)
        )
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        where = partial(_where, cfg=str(cfg))
        raise ConfigError(format_validation_error(exc, where), source=str(cfg)) from None
    except SettingsError as exc:
        raise ConfigError(_env_parse_error(exc), source="environment") from None
    except ValueError as exc:  # _merge: an AOMD_ACCOUNTS__<i>__ index past the end
        raise ConfigError(
            f"environment: {exc}; expected AOMD_ACCOUNTS__<i>__<FIELD> with i an existing "
            "account index or the next one",
            source="environment",
        ) from None
    # Relative dirs are relative to the settings file, wherever it is.
    base = cfg.resolve().parent if cfg.exists() else Path.cwd()
    updates: dict[str, Any] = {}
    if not settings.state_dir.is_absolute():
        updates["state_dir"] = base / settings.state_dir
    if not settings.policies_dir.is_absolute():
        updates["policies_dir"] = base / settings.policies_dir
    if updates:
        settings = settings.model_copy(update=updates)
    if not cfg.exists():
        settings._missing_config = cfg
    return settings


def format_validation_error(
    exc: ValidationError, source: str | Callable[[tuple[str | int, ...]], str]
) -> str:
    """One line per problem: ``source: field.path: message (got: value)``; never echoes
    secrets. ``source`` may depend on the field: a value from the environment is blamed
    on its variable, not on the file."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        msg = err["msg"]
        secretish = any(k in loc for k in ("sk", "ak", "token", "secret", "password"))
        got = "" if secretish or "input" not in err else f" (got {_short(err['input'])})"
        where = source if isinstance(source, str) else source(tuple(err["loc"]))
        lines.append(f"{where}: {loc}: {msg}{got}")
    return "\n".join(lines)


def _where(loc: tuple[str | int, ...], *, cfg: str) -> str:
    """The environment variable that set ``loc`` (the longest one that is set), else the
    settings file: an operator who never wrote a value into settings.toml must not be
    sent there to fix it."""
    env = {k.upper() for k in os.environ}
    for end in range(len(loc), 0, -1):
        name = "AOMD_" + "__".join(str(p).upper() for p in loc[:end])
        if name in env:
            return f"environment variable {name}"
        below = sorted(k for k in env if k.startswith(name + "__"))
        if below and end == len(loc):  # variables that built this very value
            return "environment variable" + ("s " if len(below) > 1 else " ") + ", ".join(below)
    return cfg


def _env_parse_error(exc: SettingsError) -> str:
    """pydantic-settings says 'error parsing value for field "accounts" from source
    "EnvSettingsSource"'; the operator needs the variable and the expected form."""
    match = re.search(r'field "([^"]+)"', str(exc))
    field = match.group(1) if match else "?"
    name = f"AOMD_{field.upper()}"
    cause = exc.__cause__
    # a JSON decode error names a position, never the text, so it cannot leak a secret
    why = f" ({cause})" if isinstance(cause, ValueError) else ""
    hint = (
        'a JSON list such as [{"name": "prod", "region": "cn-north-4", "project_id": '
        '"<32 characters>", "token_file": "/run/secrets/token"}], or one field at a time '
        "with AOMD_ACCOUNTS__0__<FIELD>"
        if field == "accounts"
        else f"valid JSON for {field}, or one field at a time with {name}__<FIELD>"
    )
    return f"environment variable {name}: not valid JSON{why}; expected {hint}"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
