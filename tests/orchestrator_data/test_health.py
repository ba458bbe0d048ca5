from __future__ import annotations

import pytest

from orchestrator_data.health import major_version, version_problem


@pytest.mark.parametrize(("version", "major"), [("18.6", 18), ("16.4 (Debian 16.4-1)", 16), ("7.0.15", 7),
                                               ("8.19.3", 8), (None, None), ("dev", None)])
def test_major_version(version, major):
    assert major_version(version) == major


def test_version_requirements():
    assert version_problem("postgres", "16.0") is None
    assert "older than the required 16" in version_problem("postgres", "15.18")
    assert version_problem("redis", "7.2.4") is None
    assert "older" in version_problem("redis", "6.2.14")
    assert version_problem("elasticsearch", "8.11.0") is None
    assert version_problem("elasticsearch", "9.1.0") is None
    assert "older" in version_problem("elasticsearch", "7.17.0")
    assert "newer" in version_problem("elasticsearch", "10.0.0")
