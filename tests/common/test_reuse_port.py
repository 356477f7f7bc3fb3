"""REUSE_PORT=1: two processes of one service share its port, and either
alone keeps serving it; without it, a second process cannot take the port."""

from __future__ import annotations

import urllib.request

import psutil

from deploy.processes import ServiceProcess
from tests.waiting import eventually_blocking


def _healthy(url: str) -> None:
    with urllib.request.urlopen(f"{url}/healthz", timeout=5) as resp:
        assert resp.status == 200


def _listens(service: ServiceProcess) -> bool:
    process = psutil.Process(service.process.pid)
    return any(c.status == psutil.CONN_LISTEN and c.laddr.port == service.port
               for c in process.net_connections("tcp"))


def test_two_processes_share_one_port_and_either_serves_it_alone(redis_server, tmp_path):
    env = {"REDIS_URL": redis_server, "REUSE_PORT": "1"}
    first = ServiceProcess("trip_service", env, log_path=tmp_path / "first.log").start(timeout=30)
    second = ServiceProcess("trip_service", env, port=first.port, health_path=None,
                            log_path=tmp_path / "second.log")
    try:
        second.start()
        # Its own listening socket (a health answer could come from the
        # first: they share the URL), or its exit.
        eventually_blocking(lambda: _listens(second) or second.process.poll() is not None,
                            timeout=30)
        assert second.process.poll() is None, (tmp_path / "second.log").read_text()[-2000:]
        first.stop()
        # Every new connection now goes to the one left.
        for _ in range(20):
            _healthy(second.url)
    finally:
        second.stop()
        first.stop()


def test_without_reuse_port_a_second_process_cannot_take_the_port(redis_server, tmp_path):
    env = {"REDIS_URL": redis_server}
    first = ServiceProcess("trip_service", env, log_path=tmp_path / "first.log").start(timeout=30)
    second = ServiceProcess("trip_service", env, port=first.port, health_path=None,
                            log_path=tmp_path / "second.log")
    try:
        second.start()
        assert second.process.wait(timeout=30) != 0
        assert "cannot start" in (tmp_path / "second.log").read_text()
        _healthy(first.url)
    finally:
        second.stop()
        first.stop()
