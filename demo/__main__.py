"""``python -m demo``: generate the demo media and serve it over RTSP until Ctrl-C, or save preview stills.

    python -m demo serve [--seed 7] [--media-dir var/demo-media] [--port 8554]
    python -m demo stills OUT_DIR [--seed 7] [--at 3 40 80]
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from demo.scenes import SCENE_NAMES


def _serve(args: argparse.Namespace) -> int:
    from demo.media import ensure_media
    from demo.server import DemoRtspServer

    media = ensure_media(Path(args.media_dir), args.seed, tuple(args.scene or SCENE_NAMES))
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    with DemoRtspServer(media, host=args.host, port=args.port) as server:
        for name in media:
            print(server.url(name))
        print("serving; Ctrl-C stops", file=sys.stderr)
        while not done.wait(1.0):
            if not server.running:
                print(f"RTSP server died:\n{server.stderr_tail()}", file=sys.stderr)
                return 1
    return 0


def _stills(args: argparse.Namespace) -> int:
    import cv2

    from demo.scenes import make_scene

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.scene or SCENE_NAMES:
        scene = make_scene(name, args.seed)
        for t in args.at:
            path = out / f"{name}-{args.seed}-{t:05.1f}s.png"
            cv2.imwrite(str(path), scene.render(t))
            print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m demo", description="citywall demo cameras")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="generate (or reuse) the media and serve it over RTSP")
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--media-dir", default="var/demo-media")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8554)
    s.add_argument("--scene", action="append", choices=SCENE_NAMES)
    s.set_defaults(func=_serve)
    st = sub.add_parser("stills", help="write PNG frames of the scenes at given times")
    st.add_argument("out_dir")
    st.add_argument("--seed", type=int, default=7)
    st.add_argument("--at", type=float, nargs="+", default=[3.0, 40.0, 80.0])
    st.add_argument("--scene", action="append", choices=SCENE_NAMES)
    st.set_defaults(func=_stills)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
