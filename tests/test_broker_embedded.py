"""Embedded redis-server / mosquitto child processes: loopback only, same port on restart, no orphans after stop or
after the parent is SIGKILLed, a lost port race retried, clear errors for a missing binary or a failed start."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from broker.embedded import EmbeddedMosquitto, EmbeddedRedis, find_binary

REPO = Path(__file__).resolve().parents[1]


def _alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie waiting for a reaper."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a LISTEN socket on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, hexport = local.rsplit(":", 1)
            if state == "0A" and int(hexport, 16) == port:
                found.add(addr)
    return found


@pytest.mark.parametrize("kind", [EmbeddedRedis, EmbeddedMosquitto])
def test_start_answers_on_loopback_restart_keeps_port_stop_leaves_no_process(tmp_path: Path, kind) -> None:
    server = kind(tmp_path / "srv")
    with server:
        url = server.url
        assert url.startswith(("redis://127.0.0.1:", "mqtt://127.0.0.1:"))
        assert _listening_addresses(server.port) == {"0100007F"}  # 127.0.0.1 and nothing else
        assert server.config_path.exists() and "127.0.0.1" in server.config_path.read_text()
        first_pid = server.pid
        assert server.restart() == url
        assert server.pid != first_pid and not _alive(first_pid)
        assert server.start() == url  # already running: a no-op
        pid = server.pid
    assert server.pid is None and not _alive(pid)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def test_configs_are_what_the_brief_asks(tmp_path: Path) -> None:
    redis_conf = EmbeddedRedis(tmp_path)._config_text(6399)
    for line in ('save ""', "appendonly no", "protected-mode yes", "bind 127.0.0.1", "port 6399"):
        assert line in redis_conf.splitlines()
    assert "appendonly yes" in EmbeddedRedis(tmp_path, persistent=True)._config_text(6399).splitlines()
    mqtt_conf = EmbeddedMosquitto(tmp_path)._config_text(1999).splitlines()
    for line in ("listener 1999 127.0.0.1", "allow_anonymous true", "set_tcp_nodelay true", "persistence false"):
        assert line in mqtt_conf
    assert not any("websockets" in line for line in mqtt_conf)


def test_children_die_when_the_parent_is_killed(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys, time, threading
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from broker.embedded import EmbeddedMosquitto, EmbeddedRedis
        servers = [EmbeddedRedis(Path({str(tmp_path)!r}) / "r"), EmbeddedMosquitto(Path({str(tmp_path)!r}) / "m")]
        # started from a short-lived thread, as asyncio.to_thread would: the children must outlive that thread
        t = threading.Thread(target=lambda: [s.start() for s in servers]); t.start(); t.join()
        time.sleep(0.3)
        print(" ".join(str(s.pid) for s in servers), flush=True)
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = parent.stdout.readline()
        pids = [int(p) for p in line.split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids), line
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    for pid in pids:
        assert _wait_gone(pid), f"child {pid} outlived its SIGKILLed parent"


def test_a_taken_port_is_retried_on_another(tmp_path: Path, monkeypatch) -> None:
    import broker.embedded as embedded

    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    ports = iter([taken])
    real = embedded.free_port
    monkeypatch.setattr(embedded, "free_port", lambda: next(ports, None) or real())
    try:
        with EmbeddedRedis(tmp_path) as server:
            assert server.port != taken
            assert "already in use" in server.log_path.read_text()
    finally:
        squatter.close()


def test_missing_binary_names_the_debian_package(monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    import broker.embedded as embedded

    monkeypatch.setattr(embedded, "_SBIN_DIRS", ("/nonexistent",))
    with pytest.raises(RuntimeError, match=r"redis-server not found: install Debian package redis-server \(make up"):
        find_binary("redis-server", "redis-server")
    with pytest.raises(RuntimeError, match="mosquitto not found: install Debian package mosquitto"):
        EmbeddedMosquitto(Path("/tmp")).start()


def test_a_server_that_fails_to_start_reports_its_log(tmp_path: Path) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\necho 'FATAL CONFIG FILE ERROR: no such thing' >&2\nexit 1\n")
    fake.chmod(0o755)
    server = EmbeddedRedis(tmp_path / "w", binary=str(fake))
    with pytest.raises(RuntimeError, match=r"(?s)redis-server exited with status 1.*FATAL CONFIG FILE ERROR"):
        server.start()
    assert server.pid is None


def test_persistent_redis_keeps_data_across_restart_and_ephemeral_does_not(tmp_path: Path) -> None:
    def roundtrip(server: EmbeddedRedis) -> bytes:
        with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
            sock.sendall(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
            return sock.recv(100)

    def put(server: EmbeddedRedis) -> None:
        with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
            sock.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n")
            assert sock.recv(100) == b"+OK\r\n"

    for persistent, after in ((True, b"$1\r\nv\r\n"), (False, b"$-1\r\n")):
        with EmbeddedRedis(tmp_path / str(persistent), persistent=persistent) as server:
            put(server)
            server.restart()
            assert roundtrip(server) == after
        assert any((tmp_path / str(persistent)).glob("appendonly*")) == persistent


def test_a_persistent_broker_in_a_private_directory_keeps_durable_sessions(tmp_path: Path) -> None:
    # Started by root, mosquitto runs unprivileged and cannot traverse a 0700 directory above its workdir; its
    # database must still be written there, and a durable subscriber's queued message survive a restart.
    import paho.mqtt.client as mqtt

    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    got: list[bytes] = []
    with EmbeddedMosquitto(private / "m", persistent=True) as server:
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="durable-sub", clean_session=False)
        sub.on_message = lambda c, u, m: got.append(m.payload)
        sub.connect("127.0.0.1", server.port)
        sub.subscribe("t", qos=1)
        sub.loop(1.0)
        sub.disconnect()
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pub")
        pub.connect("127.0.0.1", server.port)
        pub.loop_start()
        pub.publish("t", b"queued while away", qos=1).wait_for_publish(5)
        pub.disconnect()
        pub.loop_stop()
        time.sleep(1.5)  # autosave_interval 1
        server.restart()
        assert (private / "m" / "mosquitto.db").exists(), server.log_tail()
        assert "Permission denied" not in server.log_tail(), server.log_tail()
        sub.reconnect()
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            sub.loop(0.2)
        sub.disconnect()
    assert got == [b"queued while away"]
