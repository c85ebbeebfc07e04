"""Only one beat may run, in the embedded mode too (a file lock): a second beat is refused at once, and a
beat started with --wait-for-lock takes over as soon as the first one is gone."""

from __future__ import annotations

import os
import time
from pathlib import Path

from app.settings import load_settings
from tests.integration.workers_harness import REPO, SETTING_NAMES, Services
from workers.beat import FileBeatLock, make_beat_lock


def embedded_services(tmp_path: Path) -> Services:
    env = {key: value for key, value in os.environ.items() if key.upper() not in SETTING_NAMES}
    env |= {
        "DATA_DIR": str(tmp_path / "var"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'var' / 'db.sqlite3'}",
        "PYTHONPATH": str(REPO),
    }
    return Services(tmp_path, env)


def test_file_lock_admits_one_holder_at_a_time(tmp_path: Path) -> None:
    lock = make_beat_lock(load_settings(redis_url=None, data_dir=tmp_path))
    other = FileBeatLock(tmp_path / "beat.lock")
    assert lock.acquire()
    assert not other.acquire()
    assert other.holder() is not None and str(os.getpid()) in (other.holder() or "")
    lock.release()
    assert other.acquire()
    other.release()


def test_a_second_beat_is_refused_and_a_waiting_one_takes_over(tmp_path: Path) -> None:
    services = embedded_services(tmp_path)
    try:
        held = FileBeatLock(tmp_path / "var" / "beat.lock")
        assert held.acquire()
        refused = services.beat("refused")
        assert refused.proc.wait(30) == 1
        assert "only one beat may run" in refused.log()

        waiting = services.beat("waiting", extra_args=("--wait-for-lock", "20"))
        time.sleep(1.0)
        assert waiting.proc.poll() is None and "lock acquired" not in waiting.log()
        held.release()
        waiting.wait_for_log("beat: lock acquired", timeout=15)
    finally:
        services.stop_all()
