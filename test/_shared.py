"""Access to ../shared/ (golden reference data), which CI places beside the checkout."""

import os
from pathlib import Path

import pytest

# MLLMSEG_SHARED_DIR points elsewhere, e.g. on a GPU machine that receives a copy inside the checkout.
SHARED_DIR = Path(os.environ.get("MLLMSEG_SHARED_DIR") or Path(__file__).resolve().parents[1].parent / "shared")


def require_shared() -> Path:
    """Return SHARED_DIR; skip the test when it is absent, or fail when MLLMSEG_REQUIRE_SHARED=1 (CI)."""
    if SHARED_DIR.is_dir():
        return SHARED_DIR
    if os.environ.get("MLLMSEG_REQUIRE_SHARED") == "1":
        pytest.fail(f"{SHARED_DIR} is missing and MLLMSEG_REQUIRE_SHARED=1")
    pytest.skip("../shared/ (golden reference data) is not beside this checkout; these tests run in CI")
