"""Cluster sweeps without an open door: TLS with certificates, a clear line for a wrong CA, a
warning for plain tcp:// off this machine, and the local default bound to loopback only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from simulator.studies.sweep import (
    TLSFiles,
    _client,
    check_scheduler,
    load_sweep_file,
    plain_tcp_warning,
    run_sweep,
)
from tests.conftest import TINY

WEDGE = str(Path(sys.executable).with_name("wedge"))


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca_and_node(folder: Path, name: str) -> TLSFiles:
    """A CA and one certificate it signs for 127.0.0.1 (used by scheduler, workers, client)."""
    folder.mkdir(parents=True, exist_ok=True)
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-ca.key",
        "-out", f"{name}-ca.pem", "-days", "2", "-subj", f"/CN={name} test CA", cwd=folder,
    )  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
        "-subj", "/CN=127.0.0.1", cwd=folder,
    )  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{name}-ca.pem", "-CAkey", f"{name}-ca.key",
        "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", "san.ext", cwd=folder,
    )  # fmt: skip
    return TLSFiles(folder / f"{name}-ca.pem", folder / f"{name}.pem", folder / f"{name}.key")


def write_sweep(tmp_path) -> Path:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(TINY))
    spec = {
        "name": "tls",
        "base": "base.yaml",
        "seeds": [1, 2],
        "overrides": {"simulation.rounds": 2},
        "grid": {"devices.count": [3, 4]},
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory):
    """A 2-worker Dask cluster on loopback that speaks only TLS with the test's certificates."""
    from dask.distributed import LocalCluster
    from distributed.security import Security

    certs = make_ca_and_node(tmp_path_factory.mktemp("certs"), "good")
    security = Security(
        tls_ca_file=str(certs.ca_file),
        tls_scheduler_cert=str(certs.cert),
        tls_scheduler_key=str(certs.key),
        tls_worker_cert=str(certs.cert),
        tls_worker_key=str(certs.key),
        tls_client_cert=str(certs.cert),
        tls_client_key=str(certs.key),
        require_encryption=True,
    )
    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        protocol="tls://",
        host="127.0.0.1",
        security=security,
        dashboard_address=None,
        silence_logs=40,
    )
    yield cluster, certs
    cluster.close()


def test_tls_sweep_gives_the_tables_of_a_plain_local_sweep(tmp_path, tls_cluster):
    cluster, certs = tls_cluster
    assert cluster.scheduler_address.startswith("tls://127.0.0.1:")
    sweep = load_sweep_file(write_sweep(tmp_path))
    over_tls = run_sweep(sweep, tmp_path / "tls", scheduler=cluster.scheduler_address, tls=certs)
    local = run_sweep(sweep, tmp_path / "local", workers=2)
    for name in ("table.parquet", "summary.parquet"):
        a = pd.read_parquet(over_tls / name)
        b = pd.read_parquet(local / name)
        pd.testing.assert_frame_equal(a, b)
    assert len(pd.read_parquet(over_tls / "summary.parquet")) == 4


def test_a_wrong_ca_fails_with_one_clear_line(tmp_path, tls_cluster):
    cluster, certs = tls_cluster
    wrong = make_ca_and_node(tmp_path / "wrong", "wrong")
    out = subprocess.run(
        [
            WEDGE, "sweep", str(write_sweep(tmp_path)), "--out", str(tmp_path / "runs"),
            "--scheduler", cluster.scheduler_address, "--tls-ca-file", str(wrong.ca_file),
            "--tls-cert", str(wrong.cert), "--tls-key", str(wrong.key),
        ],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"wedge sweep: {cluster.scheduler_address}: cannot connect: ")
    assert "Traceback" not in out.stderr


def test_scheduler_and_certificate_flags_are_checked_before_anything_runs(tmp_path):
    certs = TLSFiles(tmp_path / "ca.pem", tmp_path / "c.pem", tmp_path / "c.key")
    assert check_scheduler("tls://10.0.0.5:8786", None) == [
        "--tls-ca-file, --tls-cert, --tls-key: expected all three with a tls:// scheduler, "
        "found none"
    ]
    assert check_scheduler("tls://10.0.0.5:8786", certs) == [
        f"--tls-ca-file: expected a readable PEM file, found no file at {tmp_path / 'ca.pem'}",
        f"--tls-cert: expected a readable PEM file, found no file at {tmp_path / 'c.pem'}",
        f"--tls-key: expected a readable PEM file, found no file at {tmp_path / 'c.key'}",
    ]
    assert check_scheduler("http://h:1", None) == [
        "--scheduler: expected tls://HOST:PORT or tcp://HOST:PORT, found 'http://h:1'"
    ]
    assert check_scheduler(None, None) == [] and check_scheduler("tcp://127.0.0.1:8786", None) == []


def test_plain_tcp_off_this_machine_gets_a_one_line_warning():
    assert plain_tcp_warning("tcp://127.0.0.1:8786") is None
    assert plain_tcp_warning("tcp://localhost:8786") is None
    assert plain_tcp_warning("tls://10.1.2.3:8786") is None
    assert plain_tcp_warning("tcp://10.1.2.3:8786") == (
        "warning: tcp://10.1.2.3:8786 is neither encrypted nor authenticated: anyone who can "
        "reach it can run code on every worker and read every result; use tls:// (README, "
        "multi-machine sweeps)"
    )


def test_the_local_default_listens_on_loopback_only():
    import psutil

    me = psutil.Process()
    before = {c.laddr for c in me.net_connections("inet") if c.status == psutil.CONN_LISTEN}
    client, cluster = _client(None, 2)
    try:
        addresses = [cluster.scheduler_address, *client.scheduler_info()["workers"]]
        assert all(a.startswith("tcp://127.0.0.1:") for a in addresses), addresses
        assert len(addresses) == 3
        # every socket the scheduler (this process) and its workers listen on, HTTP included
        listening = [
            c.laddr
            for proc in (me, *me.children(recursive=True))
            for c in proc.net_connections("inet")
            if c.status == psutil.CONN_LISTEN and c.laddr not in before
        ]
        assert listening and {addr.ip for addr in listening} == {"127.0.0.1"}
    finally:
        client.close()
        cluster.close()


def test_failed_point_records_hold_no_environment_secrets(tmp_path, monkeypatch):
    from simulator.studies.sweep import run_point

    secret = "wedge-test-secret-6f1c2d"  # noqa: S105 (a marker to look for, not a password)
    monkeypatch.setenv("WEDGE_TEST_TOKEN", secret)
    # 50 shards per device over 100 devices: more shards than examples, so the point fails
    scenario = {
        **TINY,
        "devices": {**TINY["devices"], "count": 100},
        "data": {"kind": "digits", "partition": {"kind": "shards", "shards_per_device": 50}},
    }
    from simulator.loader import validate_scenario

    payload = validate_scenario(scenario, "t").model_dump(mode="json")
    outcome = run_point(payload, str(tmp_path / "points"), str(tmp_path / "failed"), "p")
    assert outcome["ok"] is False
    text = (tmp_path / "failed" / "p.json").read_text()
    assert secret not in text and "WEDGE_TEST_TOKEN" not in text
    assert set(yaml.safe_load(text)) == {"error", "point", "traceback", "scenario"}
