"""The gateway's public surface is what `__all__` says."""

from __future__ import annotations

import gateway


def test_public_members() -> None:
    assert sorted(gateway.__all__) == ["Gateway", "RunningGateway", "Settings", "serve", "start"]
    for name in gateway.__all__:
        assert getattr(gateway, name).__module__.startswith("gateway.")
