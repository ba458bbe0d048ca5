"""A refusal inside Dagster names the run config a launchpad user sets, never the CLI's flags."""

from __future__ import annotations

import dagster as dg
import pytest

from assets._refusals import launchpad_wording, refused, set_config
from orchestrator_data import provisioning
from orchestrator_data.postgres.seed import SeedRefused, check_clean_allowed


def test_the_cli_flags_become_run_config():
    assert launchpad_wording("reset drops every table; pass --confirm") == \
        "reset drops every table; set config confirm: true in the launchpad"
    assert launchpad_wording("refusing to purge production data without confirmation (--confirm, or confirm: true)") \
        == "refusing to purge production data without confirmation (set config confirm: true in the launchpad)"
    assert launchpad_wording("refusing to purge production data without --confirm (a dry run shows what would go)") \
        == ("refusing to purge production data unless you set config confirm: true in the launchpad (a dry run "
            "shows what would go)")
    assert launchpad_wording("what --dry-run shows") == "what config dry_run: true shows"
    # what names no flag is left alone: a url's dashes, a negative number
    assert launchpad_wording("reset is refused in production: -1 rows at http://a--b") == \
        "reset is refused in production: -1 rows at http://a--b"
    assert set_config("dry_run", "false") == "set config dry_run: false in the launchpad"


def test_the_core_refusals_read_in_the_launchpads_words():
    with pytest.raises(provisioning.ResetRefused) as reset:
        provisioning.check_reset_allowed("development", confirm=False)
    failure = refused(reset.value)
    assert isinstance(failure, dg.Failure) and "--" not in failure.description
    assert failure.description.endswith("set config confirm: true in the launchpad")
    with pytest.raises(SeedRefused) as clean:
        check_clean_allowed("development", confirm=False)
    assert refused(clean.value).description.endswith("; set config confirm: true in the launchpad")
