"""Settings: environment first, flags override, one clear line per bad value."""

from __future__ import annotations

import pytest

from hub.settings import Settings, SettingsError, load_settings


def test_defaults() -> None:
    s = load_settings({})
    assert s == Settings()
    assert (s.max_concurrent_imports, s.http_limit, s.http_limit_per_host) == (2, 20, 5)
    assert (s.lane_chesscom, s.lane_lichess, s.lichess_page) == (2, 1, 100)


def test_environment_then_flags() -> None:
    env = {"MAX_CONCURRENT_IMPORTS": "4", "HUB_LANE_LICHESS": "2"}
    s = load_settings(env, max_concurrent_imports=7, database_url=None)
    assert s.max_concurrent_imports == 7 and s.lane_lichess == 2


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"MAX_CONCURRENT_IMPORTS": "two"}, "MAX_CONCURRENT_IMPORTS"),
        ({"MAX_CONCURRENT_IMPORTS": "0"}, "MAX_CONCURRENT_IMPORTS"),
        ({"HUB_HTTP_LIMIT": "-3"}, "HUB_HTTP_LIMIT"),
        ({"HUB_RESUME_GRACE_S": "nan"}, "HUB_RESUME_GRACE_S"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"HUB_LICHESS_URL": "lichess.org"}, "HUB_LICHESS_URL"),
        ({"HUB_ETA_ALPHA": "2"}, "HUB_ETA_ALPHA"),
        ({"HUB_BREAKER_FAILURES": "0"}, "HUB_BREAKER_FAILURES"),
        ({"HUB_BREAKER_PROBE_S": "0"}, "HUB_BREAKER_PROBE_S"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert named in str(caught.value) and "\n" not in str(caught.value)


def test_operator_settings() -> None:
    s = load_settings({"HUB_ADMIN_TOKEN": " t0ken ", "HUB_BREAKER_FAILURES": "3"})
    assert (s.admin_token, s.breaker_failures, s.breaker_probe_s) == ("t0ken", 3, 30.0)
    assert load_settings({"HUB_ADMIN_TOKEN": ""}).admin_token == ""  # no admin routes
