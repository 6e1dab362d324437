"""Settings errors name where the bad value came from and how to fix it (issue #15)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.kernel.errors import ConfigError
from daemon.settings import load_settings

PID = "0123456789abcdef0123456789abcdef"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("AOMD_"):
            monkeypatch.delenv(key)


def _cfg(tmp_path: Path, text: str = "") -> Path:
    cfg = tmp_path / "settings.toml"
    cfg.write_text(text)
    return cfg


def test_accounts_that_are_not_json_name_the_variable_and_the_form(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AOMD_ACCOUNTS", "[{name:x}]")
    with pytest.raises(ConfigError) as caught:
        load_settings(_cfg(tmp_path))
    text = str(caught.value)
    assert text.startswith("environment variable AOMD_ACCOUNTS: not valid JSON")
    assert "AOMD_ACCOUNTS__0__<FIELD>" in text
    assert "settings.toml" not in text


def test_a_bad_value_from_the_environment_is_blamed_on_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AOMD_SAFETY__DRY_RUN", "maybe")
    with pytest.raises(ConfigError) as caught:
        load_settings(_cfg(tmp_path, "[safety]\nmax_writes_per_minute = 0\n"))
    lines = str(caught.value).splitlines()
    assert any(
        line.startswith("environment variable AOMD_SAFETY__DRY_RUN: safety.dry_run:")
        for line in lines
    ), lines
    # the file's own mistake is still blamed on the file
    assert any(
        line.startswith(f"{tmp_path / 'settings.toml'}: safety.max_writes_per_minute:")
        for line in lines
    ), lines


def test_a_list_item_set_by_index_names_that_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _cfg(
        tmp_path,
        f'[[accounts]]\nname = "a"\nregion = "r"\nproject_id = "{PID}"\ntoken = "t"\n',
    )
    monkeypatch.setenv("AOMD_ACCOUNTS__0__TIMEOUT_SECONDS", "-1")
    with pytest.raises(ConfigError) as caught:
        load_settings(cfg)
    assert str(caught.value).startswith(
        "environment variable AOMD_ACCOUNTS__0__TIMEOUT_SECONDS: accounts.0.timeout_seconds:"
    )


def test_an_index_past_the_end_is_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AOMD_ACCOUNTS__3__PROJECT_ID", PID)
    with pytest.raises(ConfigError, match=r"list index 3 skips items.*AOMD_ACCOUNTS__<i>"):
        load_settings(_cfg(tmp_path))


@pytest.mark.parametrize("pid", ["abc", "0" * 31, "0" * 33])
def test_project_id_must_have_32_characters(tmp_path: Path, pid: str) -> None:
    cfg = _cfg(tmp_path, f'[[accounts]]\nproject_id = "{pid}"\nemulator = true\n')
    with pytest.raises(ConfigError, match=rf"exactly 32 characters \(got {len(pid)}\)"):
        load_settings(cfg)


def test_enterprise_project_id_is_an_account_field(tmp_path: Path) -> None:
    cfg = _cfg(
        tmp_path,
        f'[[accounts]]\nproject_id = "{PID}"\nemulator = true\nenterprise_project_id = "ep-1"\n',
    )
    assert load_settings(cfg).accounts[0].enterprise_project_id == "ep-1"


def test_warnings_no_settings_file_and_an_empty_secret_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings().warnings() == [
        "no settings file at settings.toml: running on the built-in emulator account (no "
        "cloud is called); pass --config FILE or set $AOMD_CONFIG for a real account"
    ]
    (tmp_path / "sk").write_text("\n")
    (tmp_path / "ak").write_text("AK")
    cfg = _cfg(
        tmp_path,
        f'[[accounts]]\nname = "prod"\nregion = "r"\nproject_id = "{PID}"\n'
        'ak_file = "ak"\nsk_file = "sk"\n',
    )
    assert load_settings(cfg).warnings() == [
        "account 'prod': sk_file 'sk' is empty; every request would be refused (401): write "
        "the secret into it"
    ]
