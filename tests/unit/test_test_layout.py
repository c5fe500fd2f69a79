"""The test tree's own rules: unit tests start nothing, integration tests are marked by where they
live, and no two test files share a basename."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import INTEGRATION_DIR, pytest_collection_modifyitems
from tests.unit.conftest import StartsAProcessError

TESTS = Path(__file__).resolve().parents[1]


def test_a_unit_test_cannot_start_a_subprocess():
    with pytest.raises(StartsAProcessError, match="tests/integration"):
        subprocess.run([sys.executable, "-c", "pass"], check=False)


def test_a_unit_test_cannot_start_a_server():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        with pytest.raises(StartsAProcessError, match="listen"):
            sock.listen()


def test_no_two_test_files_share_a_basename():
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [n for n, count in names.items() if count > 1] == []


def test_unit_tests_live_in_a_package_directory():
    loose = sorted(p.name for p in (TESTS / "unit").glob("test_*.py") if p.name != Path(__file__).name)
    assert loose == []


class _Item:
    def __init__(self, path: Path):
        self.fspath = path
        self.markers: list[str] = []

    def add_marker(self, marker) -> None:
        self.markers.append(marker.name)


def test_integration_marker_comes_from_the_directory():
    inside, outside = _Item(INTEGRATION_DIR / "test_x.py"), _Item(TESTS / "unit" / "core" / "test_x.py")
    pytest_collection_modifyitems(None, [inside, outside])
    assert inside.markers == ["integration"] and outside.markers == []
