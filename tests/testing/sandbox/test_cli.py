"""sandbox/cli.py: ``python -m airflow_provider_engagelab.testing.sandbox``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest
import requests
import trustme

from .helpers import CUTOFF, PATHS, REPO_ROOT


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_prints_url_and_stops_cleanly(sig):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_engagelab.testing.sandbox",
            "--port",
            "0",
            "--api-key",
            "k",
            "--api-secret",
            "s",
            "--available-through",
            CUTOFF,
            "--missing-journeys",
            "7,8",
            "--rate-limit",
            "100",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )
    with proc:
        try:
            line = proc.stdout.readline().strip()
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+", line), line
            r = requests.get(
                line + PATHS["journey"],
                params={
                    "journey_id": "6,7",
                    "time_unit": "DAY",
                    "start_time": "2026-06-09",
                    "end_time": "2026-06-10",
                },
                auth=("k", "s"),
                timeout=5,
            )
            data = r.json()["data"]
            assert [e["error_code"] for e in data] == [0, 50202]
            assert [d["time"] for d in data[0]["detail"]] == ["2026-06-09"]
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=10)
            assert proc.returncode == 0, err
            assert out == "" and err == ""
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def test_cli_serves_https_with_certfile_and_keyfile(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_engagelab.testing.sandbox", "--certfile", str(cert_file),
         "--keyfile", str(key_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT,
    )
    with proc:
        try:
            line = proc.stdout.readline().strip()
            assert re.fullmatch(r"https://127\.0\.0\.1:\d+", line), line
            assert requests.get(line + "/_admin/health", verify=str(ca_file), timeout=5).json() == {
                "status": "ok"}
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def test_cli_keyfile_needs_certfile():
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "airflow_provider_engagelab.testing.sandbox", "--keyfile", "key.pem"],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=60,
    )
    assert done.returncode == 2 and "--keyfile needs --certfile" in done.stderr
