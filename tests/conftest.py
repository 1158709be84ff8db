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
        sample_hookimpls.EVENT_IDS,
        sample_hookimpls.FAILED_ONCE,
        sample_hookimpls.RUNNING,
        sample_hookimpls.OVERLAPS,
    ):
        recorder.clear()
    return sample_hookimpls
