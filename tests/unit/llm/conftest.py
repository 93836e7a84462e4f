"""The vendors every provider test runs against: each official SDK and its local fake."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.fake_vendors import Vendor, vendor_fake


@pytest.fixture(params=["openai", "gemini"])
async def vendor(request: pytest.FixtureRequest) -> AsyncIterator[Vendor]:
    async with vendor_fake(request.param) as found:
        yield found
