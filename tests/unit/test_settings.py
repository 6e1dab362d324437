"""Settings: file, then environment (``__`` nesting, list items by index), secrets safe."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.kernel.errors import ConfigError
from daemon.settings import load_settings

PID = "0123456789abcdef0123456789abcdef"
ACCOUNT = f"""
[[accounts]]
name = "prod"
region = "cn-north-4"
project_id = "{PID}"
ak_file = "secrets/ak"
sk_file = "secrets/sk"
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("AOMD_"):
            monkeypatch.delenv(key)


def write(tmp_path: Path, text: str) -> Path:
    cfg = tmp_path / "settings.toml"
    cfg.write_text(text)
    return cfg


def test_defaults_run_on_the_embedded_emulator(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, ""))
    assert s.accounts[0].emulator
    assert s.state_dir == tmp_path / "state"
    assert s.journal_path() == tmp_path / "state" / "journal.sqlite3"


def test_environment_beats_the_file_with_nesting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = write(tmp_path, ACCOUNT + "\n[watch]\nfast_interval = 7\nslow_interval = 90\n")
    monkeypatch.setenv("AOMD_WATCH__FAST_INTERVAL", "2.5")
    monkeypatch.setenv("AOMD_ACCOUNTS__0__SK_FILE", "/run/credentials/aomd.service/sk")
    s = load_settings(cfg)
    assert s.watch.fast_interval == 2.5
    assert s.watch.slow_interval == 90
    assert s.accounts[0].sk_file == Path("/run/credentials/aomd.service/sk")
    assert s.accounts[0].name == "prod"  # the rest of the item is kept


def test_secrets_come_from_files_and_never_print(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "ak").write_text("AKEXAMPLE\n")
    (tmp_path / "secrets" / "sk").write_text("super-secret-sk\n")
    cfg = write(
        tmp_path,
        ACCOUNT.replace('"secrets/ak"', f'"{tmp_path}/secrets/ak"').replace(
            '"secrets/sk"', f'"{tmp_path}/secrets/sk"'
        ),
    )
    s = load_settings(cfg)
    sk = s.accounts[0].secret("sk")
    assert sk is not None
    assert sk.get_secret_value() == "super-secret-sk"
    assert "super-secret-sk" not in repr(s) + str(s) + repr(s.accounts[0])


def test_invalid_value_names_file_and_field_without_echoing_secrets(tmp_path: Path) -> None:
    cfg = write(
        tmp_path,
        f'[[accounts]]\nproject_id = "{PID}"\nregion = "r"\nsk = 12\nak = "x"\n'
        "[watch]\nfast_interval = -1\n",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    text = str(info.value)
    assert f"{cfg}: watch.fast_interval" in text
    assert "greater than 0" in text


def test_account_without_auth_is_rejected_with_the_fix(tmp_path: Path) -> None:
    cfg = write(tmp_path, f'[[accounts]]\nname = "x"\nregion = "r"\nproject_id = "{PID}"\n')
    with pytest.raises(ConfigError, match="set token"):
        load_settings(cfg)


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")


def test_unreadable_secret_file_names_the_path_and_fix(tmp_path: Path) -> None:
    cfg = write(tmp_path, ACCOUNT.replace('"secrets/sk"', '"/nonexistent/sk"'))
    s = load_settings(cfg)
    with pytest.raises(ConfigError, match="/nonexistent/sk"):
        s.accounts[0].secret("sk")


def test_invalid_toml_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(write(tmp_path, "[watch\n"))


def test_sharding_without_election_names_the_fix(tmp_path: Path) -> None:
    cfg = write(tmp_path, "[leader]\nsharded = true\n")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    assert "leader.sharded = true needs leader.enabled = true" in str(info.value)


def test_an_account_splits_into_at_most_256_shards(tmp_path: Path) -> None:
    cfg = write(tmp_path, ACCOUNT.replace('name = "prod"', 'name = "prod"\nshards = 0'))
    with pytest.raises(ConfigError, match="shards"):
        load_settings(cfg)
    ok = write(tmp_path, ACCOUNT.replace('name = "prod"', 'name = "prod"\nshards = 4'))
    (tmp_path / "secrets").mkdir()
    for f in ("ak", "sk"):
        (tmp_path / "secrets" / f).write_text("x")
        (tmp_path / "secrets" / f).chmod(0o600)
    assert load_settings(ok).accounts[0].shards == 4
