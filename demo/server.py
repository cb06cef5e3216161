"""The demo RTSP server as a child process, seen from the project's Python.

``demo/rtsp_server.py`` needs GStreamer's Python bindings, which only Debian's ``/usr/bin/python3`` has, so this
class runs it as a child process in its own session (signals to our process group do not reach it, and stop()
can end it and anything it started) and waits for its ``READY <port>`` line. The port chosen at the first start
is kept, so stop() then start() brings the same URLs back — which is how tests simulate a camera dropping out
and recovering.
"""

from __future__ import annotations

import collections
import os
import select
import signal
import subprocess
import threading
import time
from pathlib import Path

from broker.embedded import Spawner, die_with_parent

SYSTEM_PYTHON = "/usr/bin/python3"
SCRIPT = Path(__file__).resolve().parent / "rtsp_server.py"
READY_TIMEOUT_S = 20.0
STOP_GRACE_S = 5.0


class DemoRtspServer:
    """Serves each ``media`` file (scene name → H.264 Annex-B path) at ``rtsp://host:port/<name>``, looped at
    25 fps. Usable as a context manager; ``start()`` after ``stop()`` reuses the same port."""

    def __init__(self, media: dict[str, Path], *, host: str = "127.0.0.1", port: int = 0, fps: int = 25,
                 auth: str = "", tls_pem: Path | None = None, session_timeout_s: int = 60,
                 protocols: str = "tcp,udp", once: bool = False, aliases: dict[str, str] | None = None) -> None:
        if not media:
            raise ValueError("media: at least one scene is required")
        for name, path in media.items():
            if not name or "/" in name:
                raise ValueError(f"media: bad scene name {name!r}")
            if not Path(path).is_file():
                raise ValueError(f"media[{name!r}]: {path} does not exist")
        self.media = {n: Path(p).resolve() for n, p in media.items()}
        self.host = host
        self.port = port
        self.fps = fps
        self.auth = auth
        """``digest:USER:PASSWORD`` or ``basic:USER:PASSWORD`` to require credentials, as cameras do; "" for none."""
        self.tls_pem = tls_pem
        """Certificate + key (PEM): serve ``rtsps://``."""
        self.session_timeout_s = session_timeout_s
        """The RTSP session timeout the server announces (clients keep sessions alive within it)."""
        if protocols not in ("tcp,udp", "tcp", "udp"):
            raise ValueError(f"protocols must be 'tcp,udp', 'tcp' or 'udp', got {protocols!r}")
        self.protocols = protocols
        """Lower transports offered; ``udp`` makes the server answer a TCP-interleaved SETUP with 461."""
        self.once = once
        """Play each file once and end the stream (RTCP BYE) instead of looping."""
        self.aliases = dict(aliases or {})
        """Extra mount path (``/cam/realmonitor``) → media name."""
        self._proc: subprocess.Popen[bytes] | None = None
        self._spawner: Spawner | None = None  # lives exactly as long as the child (PDEATHSIG follows it)
        self._stderr: collections.deque[str] = collections.deque(maxlen=50)
        self._stderr_thread: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        """Process id of the running server, or ``None``."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self.pid is not None

    def url(self, name: str) -> str:
        """``rtsp://host:port/<name>`` (``name`` may be empty for the server's base URL)."""
        if self.port == 0:
            raise RuntimeError("DemoRtspServer.url(): not started yet, the port is unknown")
        return f"{'rtsps' if self.tls_pem else 'rtsp'}://{self.host}:{self.port}/{name}"

    def _command(self) -> list[str]:
        """The child's command line (a subclass serving other media overrides this)."""
        cmd = [SYSTEM_PYTHON, str(SCRIPT), "--host", self.host, "--port", str(self.port)]
        for name, path in self.media.items():
            cmd += ["--media", f"{name}={path}", "--fps", str(self.fps)]
        if self.auth:
            cmd += ["--auth", self.auth]
        if self.tls_pem:
            cmd += ["--tls", str(self.tls_pem)]
        if self.session_timeout_s != 60:
            cmd += ["--session-timeout", str(self.session_timeout_s)]
        if self.protocols != "tcp,udp":
            cmd += ["--protocols", self.protocols]
        if self.once:
            cmd.append("--once")
        for target, name in self.aliases.items():
            cmd += ["--alias", f"{name}={target}"]
        return cmd

    def start(self) -> None:
        """Start the server and wait until it listens; ``RuntimeError`` (with its stderr) if it does not."""
        if self.running:
            return
        cmd = self._command()
        # A clean environment for Debian's python: the venv's variables must not leak into it.
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        self._stderr.clear()
        # Own session (a Ctrl-C in the terminal reaches only us, and we stop it in order), and killed by the
        # kernel if we die without stopping it; the spawner thread lives as long as this object (PDEATHSIG
        # follows the thread that forked).
        if self._spawner is None:
            self._spawner = Spawner("demo-rtsp")
        proc = self._spawner.popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   start_new_session=True, env=env, preexec_fn=die_with_parent(os.getpid()))
        self._proc = proc
        self._stderr_thread = threading.Thread(target=self._drain_stderr, args=(proc,), daemon=True,
                                               name="demo-rtsp-stderr")
        self._stderr_thread.start()
        try:
            port = self._wait_ready(proc)
        except BaseException:
            self._terminate(proc)
            raise
        self.port = port

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> int:
        assert proc.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        buf = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break  # stdout closed: the process is gone
                buf += chunk
                for line in buf.decode(errors="replace").splitlines():
                    if line.startswith("READY "):
                        return int(line.split()[1])
            elif proc.poll() is not None:
                break
        proc.poll()
        time.sleep(0.1)  # let the stderr reader catch the last lines
        why = f"exited with code {proc.returncode}" if proc.returncode is not None else "did not become ready"
        raise RuntimeError(f"demo RTSP server on {self.host}:{self.port} {why} within {READY_TIMEOUT_S:.0f} s; "
                           f"stderr:\n{self.stderr_tail()}")

    def _drain_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            self._stderr.append(raw.decode(errors="replace").rstrip())

    def stderr_tail(self) -> str:
        """The last lines the server wrote to stderr."""
        return "\n".join(self._stderr)

    def stop(self) -> None:
        """Terminate the server (SIGTERM, SIGKILL after 5 s) and wait for it. Idempotent."""
        if self._proc is not None:
            self._terminate(self._proc)
            self._proc = None
        if self._spawner is not None:
            self._spawner.close()
            self._spawner = None

    def _terminate(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=2)
        if proc.stderr is not None:
            proc.stderr.close()

    def __enter__(self) -> DemoRtspServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"DemoRtspServer({self.host}:{self.port}, {', '.join(self.media)}; {state})"
