"""Shared fixtures of Tenantry's own tests (the runtime fixtures come from core.testing.plugin)."""

from __future__ import annotations

import pytest
from sample_plugin import hookimpls as sample_hookimpls


@pytest.fixture
def sample():
    """The sample plugin module, with its recorders emptied."""
    for recorder in (
        sample_hookimpls.EVENTS,
        sample_hookimpls.JOB_RUNS,
        sample_hookimpls.STARTED,
        sample_hookimpls.STOPPED,
    ):
        recorder.clear()
    return sample_hookimpls
