"""The interop matrix (issue 13 item 7): every peer in ../shared/peers against our CA and our
client. `python tools/interop/run.py` prints one line per cell, `PASS|FAIL peer case: detail`,
then `N passed, M failed`; tests/interop/test_interop_matrix.py runs the same cells under pytest
(marker `interop`). See matrix.py for what a cell is and how peer bugs are told from ours."""
