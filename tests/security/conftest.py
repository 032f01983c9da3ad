"""Fixtures of the escape suite; the harness itself is sandbox_harness.py."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import keyring
import pytest
from sandbox_harness import (
    Canaries,
    Harness,
    JsonFileKeyring,
    config_params,
    plant_canaries,
    remove_canaries,
)

from rlm_desktop.settings import KEYRING_SERVICE, KEYRING_USER


@pytest.fixture(scope="session")
def canaries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Canaries]:
    planted = plant_canaries(tmp_path_factory.mktemp("security"))
    try:
        yield planted
    finally:
        remove_canaries(planted)


@pytest.fixture
def planted(canaries: Canaries, monkeypatch: pytest.MonkeyPatch) -> Iterator[Canaries]:
    """The canaries, with the test process's environment, HOME, TMPDIR and keyring set for
    this test (a worker started now inherits what a real parent would hold)."""
    monkeypatch.setenv("OPENAI_API_KEY", canaries.env_key)
    monkeypatch.setenv("RLM_CANARY_ENV", canaries.env_other)
    monkeypatch.setenv("HOME", str(canaries.home))
    monkeypatch.setenv("TMPDIR", str(canaries.scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(canaries.scratch))
    previous = keyring.get_keyring()
    keyring.set_keyring(JsonFileKeyring(canaries.keyring_file))
    try:
        assert keyring.get_password(KEYRING_SERVICE, KEYRING_USER) == canaries.keyring_secret
        yield canaries
    finally:
        keyring.set_keyring(previous)


@pytest.fixture(params=config_params())
def harness(request: pytest.FixtureRequest, planted: Canaries) -> Harness:
    """One configuration of the sandbox (language, os, both) with the canaries planted."""
    return Harness(str(request.param), planted)
