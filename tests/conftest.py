"""Fixtures shared by every test layer."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def unique() -> str:
    """A short random token for names that must not collide between tests."""
    return uuid.uuid4().hex[:10]
