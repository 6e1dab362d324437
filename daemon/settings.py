"""Settings: ``settings.toml`` first, then ``AOMD_*`` environment variables.

Why pydantic-settings: it gives typed validation with field paths in the error, env
nesting with ``__`` and ``SecretStr`` that never prints, which is exactly the contract an
operator needs (``AOMD_ACCOUNTS__0__SK_FILE=/run/credentials/aomd/sk``).

Secrets can come from files (``*_file`` fields) so systemd ``LoadCredential`` and
Kubernetes secret mounts work without putting secrets in the environment.

Whatever is wrong with the file or an ``AOMD_*`` variable ends as a ``ConfigError`` (exit
2) that names the file or the variable, never as a traceback: a settings file that is a
directory, not UTF-8 or nested past the parser's stack, a variable that is not the JSON
its field needs (``AOMD_HTTP=notjson``, ``AOMD_ACCOUNTS=null``), a list index that skips
items, a ``state_dir`` that is a file, a ``policies_dir`` that does not exist.
"""

from __future__ import annotations

import json
import os
import re
import stat
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
)

from daemon.kernel.errors import ConfigError
from daemon.kernel.files import UnreadableFile, read_bounded

DEFAULT_CONFIG = Path("settings.toml")
ENV_CONFIG = "AOMD_CONFIG"
ENV_PREFIX = "AOMD_"
MAX_SETTINGS_BYTES = 1 << 20
MAX_JSON_DEPTH = 32


_LABEL_VALUE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")
_METRIC_LABEL = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


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
    enterprise_project_id: str | None = Field(default=None, min_length=1, max_length=64)
    """Sent as ``x_enterprise_project_id`` where the API takes it (ListWorkflowExecutions),
    for accounts whose workflows live in an enterprise project."""
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
    requests_per_second: float = Field(default=10.0, gt=0)
    """Client-side token bucket; conservative so aomd never starves humans of API quota."""
    burst: int = Field(default=20, ge=1)
    max_concurrency: int = Field(default=16, ge=1, le=1024)
    """Connection pool size and in-flight request cap."""
    timeout_seconds: float = Field(default=10.0, gt=0)
    """Per-call total timeout."""
    read_retries: int = Field(default=4, ge=0, le=20)
    shards: int = Field(default=1, ge=1, le=256)
    """With ``leader.sharded``: split this account's workflows into this many shards (a
    stable hash of the workflow id), each held by one replica; 1 = the account is one
    shard. Its schedules belong to the first."""

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
    """Poll period for idle workflows whose listing lacks ``last_execution_id`` or
    ``status`` (or contradicts the last poll), and guard period of a lone newest execution
    the change scan covers."""
    discovery_interval: float = Field(default=300.0, gt=0)
    """How often the workflow list is refreshed."""
    idle_interval: float = Field(default=3600.0, ge=0)
    """Safety-poll period for idle workflows whose listing vouches that nothing runs (same
    newest execution as the last poll, finished status); stops of those are found by the
    change scan, so this only guards against a stale listing. 0 turns it off."""
    concurrency: int = Field(default=8, ge=1)


class SafetySettings(_Frozen):
    dry_run: bool = False
    max_writes_per_minute: int = Field(default=60, ge=1)
    max_writes_per_minute_per_workflow: int = Field(default=10, ge=1)
    breaker_error_ratio: float = Field(default=0.5, gt=0, le=1)
    breaker_min_calls: int = Field(default=10, ge=1)
    breaker_cooldown_seconds: float = Field(default=60.0, gt=0)
    write_retries: int = Field(default=5, ge=0, le=20)
    """Prompt retries of a write that failed without effect (429, 5xx, connection refused),
    same idempotency key; 0 leaves it to the next pass."""
    write_retry_initial_seconds: float = Field(default=1.0, gt=0)
    """Wait before the first prompt retry (doubling each time, with jitter)."""
    write_retry_max_seconds: float = Field(default=30.0, gt=0)
    """Longest wait between prompt retries (a ``Retry-After`` may ask for more)."""


class JournalSettings(_Frozen):
    path: Path | None = None
    """SQLite file; default ``<state_dir>/journal.sqlite3``."""
    url: str | None = None
    """``postgresql://user@host:port/database``: a PostgreSQL journal shared by every
    replica (instead of the SQLite file). No password in it: use ``password_file``."""
    password_file: Path | None = None
    """File holding the PostgreSQL password (content stripped), like the other secrets."""
    retention_days: int = Field(default=90, ge=1)
    compact_after_hours: float = Field(default=6.0, gt=0)
    """Trigger toggles older than this are folded into one row per workflow, action,
    rule, outcome and UTC day (``aomd history`` shows ``xN`` and the first time)."""

    @model_validator(mode="after")
    def _check_url(self) -> JournalSettings:
        if self.url is None:
            if self.password_file is not None:
                raise ValueError("journal.password_file is set but journal.url is not")
            return self
        if not self.url.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                f"journal.url must be a PostgreSQL URL (postgresql://user@host:port/db), "
                f"not {self.url.split(':', 1)[0]!r}; leave it unset for the SQLite journal"
            )
        if self.path is not None:
            raise ValueError("set journal.path (SQLite) or journal.url (PostgreSQL), not both")
        netloc = self.url.split("://", 1)[1].split("/", 1)[0]
        if ":" in netloc.rpartition("@")[0]:
            raise ValueError(
                "journal.url must not contain the password: put it in journal.password_file"
            )
        return self

    def password(self) -> str | None:
        if self.password_file is None:
            return None
        try:
            return self.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"cannot read journal.password_file {str(self.password_file)!r}: "
                f"{exc.strerror}; fix the path or its permissions",
                source=str(self.password_file),
            ) from None


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
    sharded: bool = False
    """Split the work between the replicas, one Lease per shard (an account, or a hash
    bucket of one: ``accounts[].shards``), instead of one leader doing everything."""

    @model_validator(mode="after")
    def _sharded_needs_election(self) -> LeaderSettings:
        if self.sharded and not self.enabled:
            raise ValueError(
                "leader.sharded = true needs leader.enabled = true (the shards are Leases)"
            )
        if self.sharded and not _LABEL_VALUE.match(self.lease_name):
            raise ValueError(
                f"leader.lease_name {self.lease_name!r}: with leader.sharded it names the "
                "shard group in a Kubernetes label, so it must be 1-40 lowercase letters, "
                "digits and '-', starting and ending with a letter or digit (e.g. 'aomd')"
            )
        return self


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
    follow: bool = False
    """Test-only (``bench/soak.py``): the first account's AOM endpoint is an external
    ``aomd emulator``; ``aomd run`` sets its speed to ``speed`` and runs on its clock."""


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

    @model_validator(mode="after")
    def _check_accounts(self) -> Settings:
        names = [a.name for a in self.accounts]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(
                f"accounts: the name {twice[0]!r} is used more than once; every account "
                "needs its own name (it keys the journal, the metrics and the shards)"
            )
        if self.leader.sharded:
            for i, name in enumerate(names):
                if not _METRIC_LABEL.match(name):
                    raise ValueError(
                        f"accounts.{i}.name {name!r}: with leader.sharded the account name "
                        "is a metric label, so use 1-64 letters, digits and '_.:-'"
                    )
        return self

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

    def journal_path(self) -> Path:
        return self.journal.path or self.state_dir / "journal.sqlite3"


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
        _check_env_json()  # before pydantic-settings, whose own errors name no variable
        merged: dict[str, Any] = _merge(self._file(), self._env(), "")
        return merged


def _env_items() -> list[tuple[str, str]]:
    return [(k, v) for k, v in os.environ.items() if k.upper().startswith(ENV_PREFIX)]


def _check_env_json() -> None:
    """Every ``AOMD_<FIELD>`` of a list or object field holds JSON of that shape."""
    shapes = {"accounts": list, **dict.fromkeys(_OBJECT_FIELDS, dict)}
    for key, value in _env_items():
        field = key[len(ENV_PREFIX) :].lower()
        shape = shapes.get(field)
        if shape is None:
            continue
        example = (
            '\'[{"name": "prod", "region": "cn-north-4", ...}]\', or one field at a time '
            "with AOMD_ACCOUNTS__0__<FIELD>=value"
            if shape is list
            else f"'{{...}}' or one field as {key.upper()}__<FIELD>=value"
        )
        what = "list" if shape is list else "object"
        # accounts carry secrets (sk, token): never echo that value, even in part
        shown = "" if shape is list else f"={_short(value)}"
        if _json_depth(value) > MAX_JSON_DEPTH:
            raise ConfigError(
                f"environment variable {key}: JSON nested deeper than {MAX_JSON_DEPTH} levels; expected a JSON "
                f"{what} such as {example}",
                source=key,
            )
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            raise ConfigError(
                f"environment variable {key}{shown}: not valid JSON ({exc}); expected a JSON {what} such as {example}",
                source=key,
            ) from None
        if parsed == [] or not isinstance(parsed, shape):
            got = "an empty list" if parsed == [] else f"JSON {type(parsed).__name__}"
            raise ConfigError(
                f"environment variable {key}{shown}: got {got}; expected a JSON {what}"
                f"{' with at least one account' if shape is list else ''} such as {example}",
                source=key,
            )


def _json_depth(text: str) -> int:
    """Bracket depth outside strings: json.loads recurses and would overflow first."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _join(where: str, key: object) -> str:
    return f"{where}__{key}" if where else f"{ENV_PREFIX}{key}"


def _merge(base: Any, over: Any, where: str) -> Any:
    digit_keys = isinstance(over, dict) and over and all(str(k).isdigit() for k in over)
    if digit_keys and (base is None or isinstance(base, list)):
        merged = list(base or [])
        for key in sorted(over, key=int):
            i = int(key)
            if i < len(merged):
                merged[i] = _merge(merged[i], over[key], _join(where, key))
            elif i == len(merged):
                merged.append(_merge(None, over[key], _join(where, key)))
            else:
                have = f"items 0-{len(merged) - 1}" if merged else "no items"
                raise ConfigError(
                    f"{_join(where, key).upper()}__...: list index {i} skips items (there are "
                    f"{have}); expected index {len(merged)} or lower (set "
                    "AOMD_ACCOUNTS__<i>__<FIELD> with i an existing account or the next one)",
                    source=_join(where, key).upper(),
                )
        return merged
    if isinstance(over, dict) and isinstance(base, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = _merge(base.get(key), value, _join(where, key))
        return out
    if isinstance(over, dict) and base is None:
        return {k: _merge(None, v, _join(where, k)) for k, v in over.items()}
    return over


_OBJECT_FIELDS = ("log", "http", "watch", "safety", "journal", "leader", "emulator")


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
    explicit = path is not None or ENV_CONFIG in os.environ
    data, found = _read_file(cfg, explicit)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        where = partial(_where, cfg=str(cfg))
        raise ConfigError(format_validation_error(exc, where), source=str(cfg)) from None
    except RecursionError:
        raise ConfigError(
            f"{cfg} or an AOMD_* variable: values nested too deeply; expected plain settings",
            source=str(cfg),
        ) from None
    # Relative dirs are relative to the settings file, wherever it is.
    base = cfg.resolve().parent if found else Path.cwd()
    updates: dict[str, Any] = {}
    if not settings.state_dir.is_absolute():
        updates["state_dir"] = base / settings.state_dir
    if not settings.policies_dir.is_absolute():
        updates["policies_dir"] = base / settings.policies_dir
    if updates:
        settings = settings.model_copy(update=updates)
    _check_dirs(settings, cfg, data)
    if not found:
        settings._missing_config = cfg
    return settings


def _read_file(cfg: Path, explicit: bool) -> tuple[dict[str, Any], bool]:
    """The settings file's table and whether there is one (``{}`` for an absent default)."""
    try:
        raw = read_bounded(cfg, MAX_SETTINGS_BYTES)
    except UnreadableFile as exc:
        if str(exc) == "no such file" and not explicit:
            return {}, False
        hint = "pass an existing --config" if str(exc) == "no such file" else "fix --config"
        what = "settings file not found" if str(exc) == "no such file" else str(exc)
        raise ConfigError(f"{_short_path(cfg)}: {what}; {hint}", source=str(cfg)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{cfg}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); expected a UTF-8 "
            "encoded TOML file",
            source=str(cfg),
        ) from None
    try:
        return tomllib.loads(text), True
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{cfg}: invalid TOML: {exc}", source=str(cfg)) from None
    except RecursionError:
        raise ConfigError(
            f"{cfg}: TOML nested too deeply to parse; expected plain settings", source=str(cfg)
        ) from None


_DEFAULT_ORIGIN = "(default)"


def _origin(field: str, cfg: Path, data: dict[str, Any]) -> str:
    """Where a top-level setting came from, as the operator would look for it."""
    var = ENV_PREFIX + field.upper()
    for key, value in _env_items():
        if key.upper() == var:
            return f"{key}={_short(value)}"
    if field in data:
        return str(cfg)
    return _DEFAULT_ORIGIN


def _check_dirs(settings: Settings, cfg: Path, data: dict[str, Any]) -> None:
    """``state_dir`` must be a directory or creatable; an explicit ``policies_dir`` must exist."""
    checks = (
        ("state_dir", settings.state_dir, False),
        ("policies_dir", settings.policies_dir, True),
    )
    for field, path, must_exist in checks:
        origin = _origin(field, cfg, data)
        if must_exist and origin == _DEFAULT_ORIGIN:
            continue
        try:
            mode: int | None = os.stat(path).st_mode
        except FileNotFoundError:
            mode = None
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ConfigError(
                f"{origin}: {field}: cannot use {_short_path(path)} ({reason}); expected a "
                "directory",
                source=field,
            ) from None
        if mode is None and must_exist:
            raise ConfigError(
                f"{origin}: {field}: {_short_path(path)} does not exist; expected a directory of "
                "policy files (or one file); a relative path is relative to the settings file",
                source=field,
            )
        if mode is not None and not stat.S_ISDIR(mode) and not (must_exist and stat.S_ISREG(mode)):
            raise ConfigError(
                f"{origin}: {field}: {_short_path(path)} exists but is not a directory; expected "
                f"a directory{' (it is created if missing)' if not must_exist else ''}",
                source=field,
            )


def _short_path(path: Path) -> str:
    text = str(path)
    return text if len(text) <= 200 else f"{text[:100]}... ({len(text):,} characters)"


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


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
