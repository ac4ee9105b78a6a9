"""The profiles the suite gates: --profile NAME[,NAME] or all, else $GATE_PROFILE, else 8k."""

import os

import pytest

from mnist_gate import checks


def pytest_addoption(parser):
    parser.addoption(
        "--profile",
        default=os.environ.get("GATE_PROFILE", "8k"),
        help="budget profile(s) to gate: a name from pyproject.toml, a comma list, or 'all' "
        "(default: $GATE_PROFILE, else 8k)",
    )


def selected_profiles(config) -> list[checks.Profile]:
    profiles = checks.load_profiles()
    wanted = config.getoption("--profile")
    names = list(profiles) if wanted == "all" else wanted.split(",")
    unknown = [name for name in names if name not in profiles]
    if unknown:
        raise pytest.UsageError(
            f"unknown profile {', '.join(unknown)}; pyproject.toml defines {', '.join(profiles)}"
        )
    return [profiles[name] for name in names]


def pytest_report_header(config):
    names = ", ".join(p.name for p in selected_profiles(config))
    return f"gated profiles: {names}"


def pytest_generate_tests(metafunc):
    if "profile" in metafunc.fixturenames:
        profiles = selected_profiles(metafunc.config)
        metafunc.parametrize("profile", profiles, ids=[p.name for p in profiles], scope="session")
