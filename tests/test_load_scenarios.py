"""CI's short load runs: scenario 1 (the general-admission rush behind the waiting room) and
scenario 3 (the gate rush), each a few hundred Locust users for about 30 seconds against a real
`kwika up --workers 2`, as `python -m loadtests.run NAME --short` runs them. The run fails (exit
1) when the verifier finds any problem (oversold stock, a seat or a payment twice, a payment
without its order, tickets or email, a stale hold, a check-in counted twice, `kwika audit`), when
any request failed (a 5xx, a timeout, a wrong answer) or when the load script itself raised."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(not (Path(sys.executable).parent / "locust").exists(),
                       reason="locust is not installed (pip install -e '.[test]')"),
]


@pytest.mark.parametrize("scenario", ["ga-rush", "gate-rush"])
def test_short_run_passes_the_verifier(services, tmp_path, scenario):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KWIKA_")}
    env.update(PYTHONPATH=str(ROOT), REDIS_URL=services.redis_url,
               DATABASE_URL=services.database_url)
    done = subprocess.run(
        [sys.executable, "-m", "loadtests.run", scenario, "--short", "--processes", "2",
         "--report-dir", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=540, check=False)
    reports = list(tmp_path.glob(f"{scenario}-*.md"))
    assert reports, f"no report written\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    report = reports[0].read_text()
    assert done.returncode == 0, f"{report}\n{done.stderr[-3000:]}"
    assert "| verifier (loadtests/verify.py, `kwika audit` included) | passed" in report
    assert (tmp_path / reports[0].name.replace(".md", ".svg")).exists()  # the chart
