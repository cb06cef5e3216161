"""Private redis-server and mosquitto started as child processes for the one-command default.

Each server gets its own config file and log in ``workdir``, binds 127.0.0.1 on a free port (picked by binding a
socket to port 0; a lost race for the port is retried on a new one) and is killed with us: the child asks the
kernel for ``SIGKILL`` when its parent dies (``prctl(PR_SET_PDEATHSIG)``), so even a ``kill -9`` of citywall leaves
no orphan. The kernel sends that signal when the *thread* that forked exits, so every start happens on one
long-lived spawner thread per server, whichever thread calls :meth:`start` (``asyncio.to_thread`` pools die early).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import errno
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
PORT_ATTEMPTS = 5
_SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin")
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (the kernel's choice for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_binary(name: str, package: str) -> str:
    """Absolute path of ``name`` on PATH or in the sbin directories; RuntimeError naming the Debian package if
    absent."""
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SBIN_DIRS))
    if found is None:
        raise RuntimeError(f"{name} not found: install Debian package {package} (make up does this)")
    return found


def die_with_parent(parent_pid: int, *, run_as: tuple[int, int] | None = None) -> Callable[[], None]:
    """preexec_fn: SIGKILL this child when the forking thread dies; exit at once if the parent is already gone.

    ``run_as`` (uid, gid): drop to that user first — a credential change clears the death signal, so it is asked
    for afterwards."""

    def preexec() -> None:
        if run_as is not None:
            os.setgroups([])
            os.setgid(run_as[1])
            os.setuid(run_as[0])
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent_pid:  # the parent died between fork and prctl
                os._exit(1)

    return preexec


class Spawner:
    """One long-lived thread that runs every ``Popen`` of a server, so PR_SET_PDEATHSIG ties the child to it."""

    def __init__(self, name: str) -> None:
        self._requests: queue.Queue[tuple[concurrent.futures.Future[subprocess.Popen[bytes]], list[str], dict[str, Any]]
                                    | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name=f"spawner-{name}", daemon=True)
        self._thread.start()

    def popen(self, args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        future: concurrent.futures.Future[subprocess.Popen[bytes]] = concurrent.futures.Future()
        self._requests.put((future, args, kwargs))
        return future.result()

    def close(self) -> None:
        self._requests.put(None)
        self._thread.join()

    def _loop(self) -> None:
        while (request := self._requests.get()) is not None:
            future, args, kwargs = request
            try:
                future.set_result(subprocess.Popen(args, **kwargs))  # noqa: S603 — fixed argv, no shell
            except BaseException as exc:  # handed to the caller's thread
                future.set_exception(exc)


class EmbeddedServer:
    """A child-process server bound to 127.0.0.1; subclasses say how to configure and probe it."""

    name = "server"
    package = "server"
    scheme = "tcp"
    path_suffix = ""

    def __init__(self, workdir: Path, *, binary: str | None = None) -> None:
        self.workdir = Path(workdir)
        self._binary = binary
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._spawner: Spawner | None = None
        self._lock = threading.Lock()
        self._fds: list[int] = []
        """Descriptors handed to the child at its next start (``pass_fds``), closed here once it has them."""

    # --------------------------------------------------------------------------------------------- subclass hooks
    def _config_text(self, port: int) -> str:
        raise NotImplementedError

    def _argv(self, binary: str, config: Path) -> list[str]:
        raise NotImplementedError

    def _answers(self, port: int, pid: int) -> bool:
        """True when the server on ``port`` answers a real request (and, where it can tell, is process ``pid``)."""
        raise NotImplementedError

    # --------------------------------------------------------------------------------------------- public API
    @property
    def config_path(self) -> Path:
        return self.workdir / f"{self.name}.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def port(self) -> int | None:
        """The bound port (kept across :meth:`restart`); None before the first start."""
        return self._port

    @property
    def pid(self) -> int | None:
        """The child's pid while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def url(self) -> str:
        """``scheme://127.0.0.1:PORT...``; RuntimeError before the first start."""
        if self._port is None:
            raise RuntimeError(f"{self.name} has not been started")
        return f"{self.scheme}://127.0.0.1:{self._port}{self.path_suffix}"

    def running(self) -> bool:
        """True while the child process is alive."""
        return self.pid is not None

    def start(self) -> str:
        """Start the server (a no-op when running) and return its URL once it answers; RuntimeError otherwise."""
        with self._lock:
            if self.running():
                return self.url
            binary = self._binary or find_binary(self.name, self.package)
            self.workdir.mkdir(parents=True, exist_ok=True)
            if self._port is not None:  # restart: the same port or nothing, clients hold this URL
                self._launch(binary, self._port)
                return self.url
            last: RuntimeError | None = None
            for _ in range(PORT_ATTEMPTS):
                port = free_port()
                try:
                    self._launch(binary, port)
                except _PortTaken as exc:
                    last = exc
                    continue
                self._port = port
                return self.url
            raise RuntimeError(f"{self.name}: no free port after {PORT_ATTEMPTS} attempts: {last}")

    def stop(self) -> None:
        """SIGTERM, wait up to 5 s, then SIGKILL; always reaps the child. Idempotent."""
        with self._lock:
            self._terminate()
            if self._spawner is not None:
                self._spawner.close()
                self._spawner = None

    def restart(self) -> str:
        """Stop and start again on the same port (persistent servers keep their data)."""
        with self._lock:
            self._terminate()
        return self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's log (stdout and stderr), for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    # --------------------------------------------------------------------------------------------- internals
    def _launch(self, binary: str, port: int) -> None:
        write_private(self.config_path, self._config_text(port), owner=getattr(self, "_account", None))
        try:
            argv = self._argv(binary, self.config_path)
            self._spawn(argv, port)
        finally:
            for fd in self._fds:
                os.close(fd)
            self._fds = []

    def _spawn(self, argv: list[str], port: int) -> None:
        marker = f"--- {self.name} starting on 127.0.0.1:{port} ({uuid.uuid4().hex[:8]}) ---"
        with open(self.log_path, "ab") as log:
            log.write(f"{marker}\n".encode())
            log.flush()
            if self._spawner is None:
                self._spawner = Spawner(self.name)
            self._proc = self._spawner.popen(
                argv, pass_fds=tuple(self._fds), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                # Own session: a Ctrl-C in the terminal reaches only citywall, which stops its servers last, after
                # the workers that use them; PDEATHSIG still kills them if citywall dies without stopping them.
                cwd=self.workdir, start_new_session=True, preexec_fn=self._preexec(),
            )
        proc = self._proc
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = self._tail_since(marker)
                self._proc = None
                if "already in use" in tail or "Address in use" in tail:
                    raise _PortTaken(f"port {port} taken: {tail.strip()[-200:]}")
                raise RuntimeError(f"{self.name} exited with status {proc.returncode} during start-up; "
                                   f"log {self.log_path}:\n{tail}")
            with contextlib.suppress(OSError):
                if self._answers(port, proc.pid) and proc.poll() is None:
                    return
            time.sleep(0.05)
        self._terminate()
        raise RuntimeError(f"{self.name} did not answer on 127.0.0.1:{port} within {START_TIMEOUT_S:.0f} s; "
                           f"log {self.log_path}:\n{self._tail_since(marker)}")

    def _preexec(self) -> Callable[[], None]:
        return die_with_parent(os.getpid())

    def _tail_since(self, marker: str) -> str:
        text = self.log_tail(200)
        return "\n".join(text.split(marker, 1)[-1].strip().splitlines()[-20:])

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        else:
            proc.wait()


class _PortTaken(RuntimeError):
    """The chosen port was taken between picking and binding (retry on another)."""


class EmbeddedRedis(EmbeddedServer):
    """A private redis-server: ``start()`` → ``redis://127.0.0.1:PORT/0``.

    No persistence by default (``save ""``, no AOF); ``persistent=True`` turns on the append-only file in
    ``workdir`` so data survives :meth:`restart`. ``password`` sets ``requirepass`` (the URL then carries it).
    """

    name = "redis-server"
    package = "redis-server"
    scheme = "redis"
    path_suffix = "/0"

    def __init__(self, workdir: Path, *, persistent: bool = False, password: str | None = None,
                 binary: str | None = None) -> None:
        super().__init__(workdir, binary=binary)
        if password is not None and (not password or any(c in password for c in " \t\r\n\"'@/:")):
            raise ValueError("password must be non-empty without spaces, quotes, '@', '/' or ':'")
        self.persistent = persistent
        self.password = password

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0`` (``redis://:PASSWORD@…`` with a password); RuntimeError before start."""
        url = super().url
        return url.replace("redis://", f"redis://:{self.password}@", 1) if self.password else url

    def _config_text(self, port: int) -> str:
        return "\n".join([
            "# written by citywall broker.embedded; rewritten on every start",
            "bind 127.0.0.1",
            f"port {port}",
            "protected-mode yes",
            "daemonize no",
            "supervised no",
            'logfile ""',
            "loglevel notice",
            'save ""',
            f"appendonly {'yes' if self.persistent else 'no'}",
            "appendfsync everysec",
            f"dir {self.workdir.resolve()}",
            "tcp-keepalive 60",
            *([f"requirepass {self.password}"] if self.password else []),
            "",
        ])

    def _argv(self, binary: str, config: Path) -> list[str]:
        return [binary, str(config)]

    def _answers(self, port: int, pid: int) -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            auth = b""
            if self.password:
                secret = self.password.encode()
                auth = b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(secret), secret)
            sock.sendall(auth + b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
            reply = _recv_until(sock, b"process_id:", b"\r\n")
        if not reply.removeprefix(b"+OK\r\n" if auth else b"").startswith(b"+PONG"):
            return False
        _, _, rest = reply.partition(b"process_id:")
        return rest.split(b"\r\n", 1)[0].strip() == str(pid).encode()  # not some other redis on a stolen port


class EmbeddedMosquitto(EmbeddedServer):
    """A private mosquitto: ``start()`` → ``mqtt://127.0.0.1:PORT`` (no websockets).

    Anonymous by default (test fixtures); with ``username``/``password`` it writes a password file (mosquitto's
    PBKDF2-SHA512 ``$7$`` format, mode 0600) and sets ``allow_anonymous false``, and the URL carries the login.
    Started by root, it runs as ``run_as`` (default the ``mosquitto`` account, else ``nobody``): the child drops
    to that user *before* asking for its parent-death signal, so the signal survives (a credential change inside
    mosquitto would clear it). No persistence by default; ``persistent=True`` keeps retained messages, durable
    sessions and their queued QoS 1 messages in ``workdir/mosquitto.db`` across :meth:`restart`.
    """

    name = "mosquitto"
    package = "mosquitto"
    scheme = "mqtt"

    def __init__(self, workdir: Path, *, persistent: bool = False, username: str | None = None,
                 password: str | None = None, run_as: str | None = None, binary: str | None = None) -> None:
        super().__init__(workdir, binary=binary)
        if (username is None) != (password is None):
            raise ValueError("username and password go together")
        for what, value in (("username", username), ("password", password)):
            if value is not None and (not value or any(c in value for c in " \t\r\n\"'@/:#")):
                raise ValueError(f"{what} must be non-empty without spaces, quotes, '@', '/', ':' or '#'")
        self.persistent = persistent
        self.username = username
        self.password = password
        self._account = _unprivileged_account(run_as) if os.geteuid() == 0 else None
        """(uid, gid) the broker runs as when we are root (mosquitto must not run as root)."""

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:PORT`` (``mqtt://USER:PASSWORD@…`` with a login); RuntimeError before start."""
        url = super().url
        return url.replace("mqtt://", f"mqtt://{self.username}:{self.password}@", 1) if self.username else url

    @property
    def password_path(self) -> Path:
        return self.workdir / "mosquitto.passwd"

    def _config_text(self, port: int) -> str:
        password_file = str(self.password_path.resolve())
        if self.username and self.password:
            write_private(self.password_path, mosquitto_password_line(self.username, self.password),
                          owner=self._account)
            if self._account is not None:
                # Handed over open: the unprivileged broker need not traverse our 0700 data directory.
                self._fds.append(os.open(self.password_path, os.O_RDONLY))
                password_file = f"/dev/fd/{self._fds[-1]}"
        persistence_location = f"{self.workdir.resolve()}/"
        if self._account is not None and self.persistent:
            os.chown(self.workdir, self._account[0], self._account[1])
            # Handed over open as well: the unprivileged broker cannot traverse the directories above a private
            # workdir (a 0700 data or test directory), and /dev/fd/N/ reaches the directory without them.
            self._fds.append(os.open(self.workdir, os.O_RDONLY | os.O_DIRECTORY))
            persistence_location = f"/dev/fd/{self._fds[-1]}/"
        return "\n".join([
            "# written by citywall broker.embedded; rewritten on every start",
            "per_listener_settings false",
            f"listener {port} 127.0.0.1",
            *(["allow_anonymous false", f"password_file {password_file}"] if self.username
              else ["allow_anonymous true"]),
            "set_tcp_nodelay true",  # QoS 1 round trips 21 ms → 0.3 ms on loopback
            *(["persistence true", f"persistence_location {persistence_location}", "autosave_interval 1"]
              if self.persistent else ["persistence false"]),
            "log_dest stdout",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_timestamp true",
            "",
        ])

    def _argv(self, binary: str, config: Path) -> list[str]:
        if self._account is None:
            return [binary, "-c", str(config)]
        self._fds.append(os.open(config, os.O_RDONLY))
        return [binary, "-c", f"/dev/fd/{self._fds[-1]}"]

    def _preexec(self) -> Callable[[], None]:
        return die_with_parent(os.getpid(), run_as=self._account)

    def _answers(self, port: int, pid: int) -> bool:
        import paho.mqtt.client as mqtt
        from paho.mqtt.properties import Properties
        from paho.mqtt.reasoncodes import ReasonCode

        connected = threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"citywall-probe-{uuid.uuid4().hex[:8]}")
        if self.username:
            client.username_pw_set(self.username, self.password)

        def on_connect(_client: mqtt.Client, _userdata: Any, _flags: mqtt.ConnectFlags, reason: ReasonCode,
                       _props: Properties | None) -> None:
            if not reason.is_failure:
                connected.set()

        client.on_connect = on_connect
        try:
            client.connect("127.0.0.1", port, keepalive=5)
            deadline = time.monotonic() + 2.0
            while not connected.is_set() and time.monotonic() < deadline:
                if client.loop(timeout=0.1) != mqtt.MQTT_ERR_SUCCESS:
                    return False
            return connected.is_set()
        except OSError as exc:
            if exc.errno in (errno.ECONNREFUSED, errno.ECONNRESET):
                return False
            raise
        finally:
            with contextlib.suppress(Exception):
                client.disconnect()


def _unprivileged_account(name: str | None) -> tuple[int, int]:
    """(uid, gid) of ``name``, else of the ``mosquitto`` account, else of ``nobody``."""
    import pwd

    for candidate in ([name] if name else ["mosquitto", "nobody"]):
        try:
            entry = pwd.getpwnam(candidate)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    raise RuntimeError(f"no unprivileged account to run mosquitto as (tried {name or 'mosquitto, nobody'})")


def write_private(path: Path, text: str, *, owner: tuple[int, int] | None = None) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600), created so from the start (no window)."""
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    if owner is not None:
        os.chown(tmp, owner[0], owner[1])
    os.replace(tmp, path)


def mosquitto_password_line(username: str, password: str, *, iterations: int = 101) -> str:
    """One ``password_file`` line in mosquitto 2's format: ``user:$7$iterations$salt$hash`` (PBKDF2-SHA512)."""
    import base64
    import hashlib

    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return (f"{username}:$7${iterations}${base64.b64encode(salt).decode()}$"
            f"{base64.b64encode(digest).decode()}\n")


def generate_secret() -> str:
    """A random password for a private broker (URL-safe, no characters that need quoting)."""
    import secrets

    return secrets.token_hex(24)


def _recv_until(sock: socket.socket, *needles: bytes, limit: int = 65536) -> bytes:
    """Read until every needle has been seen in order after the first (or EOF / limit)."""
    data = b""
    while len(data) < limit:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
        pos = 0
        for needle in needles:
            pos = data.find(needle, pos)
            if pos < 0:
                break
            pos += len(needle)
        else:
            return data
    return data


__all__ = ["EmbeddedMosquitto", "EmbeddedRedis", "EmbeddedServer", "find_binary", "free_port"]
