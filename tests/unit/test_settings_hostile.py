"""Settings from the wild (issue #18): each reproducer that crashed or was silently accepted.

Each case runs the real command line in-process (``daemon.cli.main``) and must end in
exit 2 with a message that names the file, the setting or the variable.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.cli import main


def aomd(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str]:
    monkeypatch.delenv("AOMD_CONFIG", raising=False)
    code = main(args)
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.err


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "pol").mkdir()
    (tmp_path / "pol" / "p.yaml").write_text("rules: []\n")
    path = tmp_path / "settings.toml"
    path.write_text('policies_dir = "pol"\n')
    monkeypatch.chdir(tmp_path)
    return path


ENV_CASES = {
    "bad_json_object": ({"AOMD_HTTP": "notjson"}, "AOMD_HTTP='notjson': not valid JSON"),
    "deep_json": (
        {"AOMD_WATCH": '{"a":' * 5000 + "1" + "}" * 5000},
        "AOMD_WATCH: JSON nested deeper than 32 levels",
    ),
    "accounts_empty_object": ({"AOMD_ACCOUNTS": "{}"}, "AOMD_ACCOUNTS: got JSON dict"),
    "accounts_null": ({"AOMD_ACCOUNTS": "null"}, "AOMD_ACCOUNTS: got JSON NoneType"),
    "accounts_empty_list": ({"AOMD_ACCOUNTS": "[]"}, "got an empty list"),
    "account_index_skips_items": (
        {"AOMD_ACCOUNTS__5__NAME": "x"},
        "AOMD_ACCOUNTS__5__...: list index 5 skips items (there are no items)",
    ),
    "policies_dir_missing": (
        {"AOMD_POLICIES_DIR": "/nonexistent"},
        "AOMD_POLICIES_DIR='/nonexistent': policies_dir: /nonexistent does not exist",
    ),
    "policies_dir_100k": ({"AOMD_POLICIES_DIR": "x" * 100_000}, "policies_dir: cannot use"),
}


@pytest.mark.parametrize("case", sorted(ENV_CASES))
def test_bad_variable_is_exit_2_naming_it(
    case: str,
    cfg: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env, expected = ENV_CASES[case]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code, err = aomd(["--config", str(cfg), "validate"], capsys, monkeypatch)
    assert code == 2, err
    assert expected in err
    assert len(err) < 2000


def test_bad_accounts_json_never_echoes_a_secret(
    cfg: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AOMD_ACCOUNTS", '[{"name": "a", "sk": "s3cr3t-value"')
    code, err = aomd(["--config", str(cfg), "validate"], capsys, monkeypatch)
    assert code == 2
    assert "AOMD_ACCOUNTS: not valid JSON" in err
    assert "s3cr3t" not in err


def test_account_index_skipping_file_items(
    cfg: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg.write_text(
        'policies_dir = "pol"\n[[accounts]]\nname = "a"\nproject_id = "pppppppppppppppppppppppppppppppp"\nemulator = true\n'
    )
    monkeypatch.setenv("AOMD_ACCOUNTS__2__NAME", "x")
    code, err = aomd(["--config", str(cfg), "validate"], capsys, monkeypatch)
    assert code == 2
    assert "AOMD_ACCOUNTS__2__...: list index 2 skips items (there are items 0-0)" in err
    monkeypatch.setenv("AOMD_ACCOUNTS__2__NAME", "")
    monkeypatch.delenv("AOMD_ACCOUNTS__2__NAME")
    monkeypatch.setenv("AOMD_ACCOUNTS__0__NAME", "renamed")  # the documented way still works
    code, err = aomd(["--config", str(cfg), "validate"], capsys, monkeypatch)
    assert code == 0, err


def test_state_dir_that_is_a_file(
    cfg: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (cfg.parent / "state").write_text("")
    cfg.write_text('policies_dir = "pol"\nstate_dir = "state"\n')
    code, err = aomd(["--config", str(cfg), "validate"], capsys, monkeypatch)
    assert code == 2  # was exit 1 with a JournalError from `run`
    assert f"{cfg}: state_dir: {cfg.parent / 'state'} exists but is not a directory" in err


def test_config_that_is_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, err = aomd(["--config", str(tmp_path), "validate"], capsys, monkeypatch)
    assert code == 2
    assert f"{tmp_path}: a directory; expected a regular file" in err


def test_config_not_utf8(
    cfg: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg.write_bytes(b'policies_dir = "pol"\n# caf\xe9\n')
    code, err = aomd(["--config", str(cfg), "validate"], capsys, monkeypatch)
    assert code == 2
    assert f"{cfg}:2: not UTF-8 text (byte 0xe9)" in err


def test_config_nested_too_deeply(
    cfg: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    code, err = aomd(["--config", str(cfg), "validate"], capsys, monkeypatch)
    assert code == 2
    assert f"{cfg}: TOML nested too deeply" in err
