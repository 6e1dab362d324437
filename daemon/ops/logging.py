"""One logging pipeline for aomd and the libraries it uses.

Why: operators grep and ship logs; a daemon whose own events are JSON but whose aiohttp
or APScheduler messages are free text (or go elsewhere) is half observable. Everything
goes through structlog's ``ProcessorFormatter`` on the root stdlib logger, so both kinds
get the same keys (``timestamp``, ``level``, ``logger``, ``event``), the same renderer
and - most important - the same redaction step, which runs last before rendering so no
code path can skip it.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Mapping, MutableMapping
from typing import IO, Any

import structlog
from pydantic import SecretStr
from structlog.typing import EventDict, Processor, WrappedLogger

from daemon.settings import LogSettings

REDACTED = "[REDACTED]"

# Exact key names (lower case, ``-`` folded to ``_``) whose values are always secret.
_SECRET_KEYS = frozenset(
    {
        "ak",
        "sk",
        "secret",
        "secret_key",
        "access_key",
        "token",
        "authorization",
        "password",
        "passwd",
        "x_auth_token",
        "x_security_token",
        "x_subject_token",
        "api_key",
        "cookie",
        "set_cookie",
        "credentials",
    }
)
# Suffixes that mark a secret (``auth_token``, ``db_password``); ``token_file`` is a path.
_SECRET_SUFFIXES = ("_secret", "_token", "_password", "_sk", "_secret_key", "_api_key")
# Registered values shorter than this are refused: masking "a" would shred every line.
MIN_SECRET_LENGTH = 4
_MAX_DEPTH = 6

_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()
_secret_re: re.Pattern[str] | None = None

_HANDLER_MARK = "_aomd_handler"


def register_secret(value: str | SecretStr | None) -> None:
    """Mask every later occurrence of ``value`` in any log field, whatever its key.

    Key-based masking misses a secret logged under an innocent key (a URL, an
    exception message); registering the value itself closes that gap.
    """
    global _secrets, _secret_re
    if value is None:
        return
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    raw = raw.strip()
    if len(raw) < MIN_SECRET_LENGTH:
        return
    with _lock:
        if raw in _secrets:
            return
        _secrets = _secrets | {raw}
        # longest first so a secret containing another is masked whole
        ordered = sorted(_secrets, key=len, reverse=True)
        _secret_re = re.compile("|".join(re.escape(s) for s in ordered))


def clear_secrets() -> None:
    """Forget registered secrets (tests; a reload that replaces credentials)."""
    global _secrets, _secret_re
    with _lock:
        _secrets = frozenset()
        _secret_re = None


def is_secret_key(key: object) -> bool:
    if not isinstance(key, str):
        return False
    k = key.lower().replace("-", "_")
    return k in _SECRET_KEYS or k.endswith(_SECRET_SUFFIXES)


def _scrub(value: Any, depth: int) -> Any:
    pattern = _secret_re
    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, str):
        return pattern.sub(REDACTED, value) if pattern is not None else value
    if depth >= _MAX_DEPTH:
        return value
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if is_secret_key(k) else _scrub(v, depth + 1)) for k, v in value.items()
        }
    if isinstance(value, tuple):
        return tuple(_scrub(v, depth + 1) for v in value)
    if isinstance(value, list | set | frozenset):
        return [_scrub(v, depth + 1) for v in value]
    if pattern is not None and not isinstance(value, int | float | bool | type(None)):
        # objects rendered later via repr/str: check their text now
        text = str(value)
        if pattern.search(text):
            return pattern.sub(REDACTED, text)
    return value


def redact(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secret keys (recursively) and registered secret values."""
    for key in list(event_dict):
        if key.startswith("_"):
            continue
        if is_secret_key(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key], 0)
    return event_dict


def _drop_color_message(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    event_dict.pop("color_message", None)
    return event_dict


def shared_processors() -> list[Processor]:
    """Processors applied to structlog and stdlib records alike, before rendering."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        _drop_color_message,
    ]


def _wants_json(settings: LogSettings, stream: IO[str]) -> bool:
    if settings.format == "json":
        return True
    if settings.format == "console":
        return False
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())


def configure_logging(settings: LogSettings, *, stream: IO[str] | None = None) -> None:
    """Install the pipeline on the root logger; safe to call again (replaces, not stacks).

    ``stream`` defaults to stderr (journald and kubectl logs both read it).
    """
    out: IO[str] = stream if stream is not None else sys.stderr
    as_json = _wants_json(settings, out)
    renderer: Processor
    if as_json:
        renderer = structlog.processors.JSONRenderer(sort_keys=False, default=str)
        final: list[Processor] = [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # a plain traceback string, not dict_tracebacks: that one captures frame
            # locals, which may hold secrets under innocent names
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=_isatty(out))
        final = [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ]
    pre = shared_processors()
    formatter = structlog.stdlib.ProcessorFormatter(foreign_pre_chain=pre, processors=final)
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)

    level = getattr(logging, settings.level.upper())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, _HANDLER_MARK, False):
            root.removeHandler(old)
            old.close()
    root.addHandler(handler)
    root.setLevel(level)
    # chatty libraries: keep their warnings, drop their per-request noise below our level
    for noisy in ("aiohttp.access", "apscheduler.executors.default"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *pre,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def _isatty(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(callable(isatty) and isatty())


def scrub_text(text: str) -> str:
    """Mask registered secrets in free text (e.g. a status line sent to systemd)."""
    pattern = _secret_re
    return pattern.sub(REDACTED, text) if pattern is not None else text


def scrub_mapping(data: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Redact a mapping in place the way log events are redacted; returns it."""
    redact(None, "", data)
    return data


def registered_count() -> int:
    return len(_secrets)


__all__ = [
    "REDACTED",
    "clear_secrets",
    "configure_logging",
    "is_secret_key",
    "redact",
    "register_secret",
    "scrub_mapping",
    "scrub_text",
    "shared_processors",
]
