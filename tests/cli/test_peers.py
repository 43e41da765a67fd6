"""The race's peers (gibbous/devcluster/peers.py): the pinned versions, the cache, the
overrides and the message when Go is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from gibbous.devcluster.peers import PeersError, cache_dir, find_peers, versions


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for variable in ("KARPENTER_KWOK_BIN", "KWOK_BIN"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "no-go-here"))


def test_the_versions_are_what_issue_33_checked() -> None:
    assert versions() == ("v1.15.0", "v0.8.0")
    assert cache_dir().name == "peers-karpenter-v1.15.0-kwok-v0.8.0"


def test_without_go_the_error_names_the_toolchain_and_the_overrides() -> None:
    with pytest.raises(PeersError) as raised:
        find_peers()
    message = str(raised.value)
    assert "Go toolchain (`go`)" in message
    assert "go1.27.3" in message
    assert "KARPENTER_KWOK_BIN" in message


def test_a_complete_cache_is_used_without_building(tmp_path: Path) -> None:
    cache = cache_dir()
    for directory in ("bin", "karpenter-crds", "kwok-stages"):
        (cache / directory).mkdir(parents=True)
    for program in ("karpenter-kwok", "kwok"):
        (cache / "bin" / program).write_text("#!/bin/sh\n")
    peers = find_peers()  # no Go on PATH: it must not try to build
    assert peers.karpenter == cache / "bin" / "karpenter-kwok"
    assert peers.kwok_stages == cache / "kwok-stages"


def test_the_overrides_replace_the_programs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = cache_dir()
    for directory in ("karpenter-crds", "kwok-stages"):
        (cache / directory).mkdir(parents=True)
    mine = tmp_path / "mine"
    mine.write_text("#!/bin/sh\n")
    monkeypatch.setenv("KARPENTER_KWOK_BIN", str(mine))
    monkeypatch.setenv("KWOK_BIN", str(mine))
    peers = find_peers(build=False)
    assert peers.karpenter == mine
    assert peers.kwok == mine
