"""A real RTSP camera on loopback: Debian's gst-rtsp-server serving an H.264 file.

Run with the system interpreter (`/usr/bin/python3`), which has python3-gi; the
project's venv does not, so it imports nothing from the project. The tests and
the soak start it as a child process (`RTSP_CAMERA` is its path), wait until the
port accepts connections and kill it at teardown.

    /usr/bin/python3 stream/bench/rtsp_camera.py --port 8554 --mount /clip --file clip.mp4
    /usr/bin/python3 stream/bench/rtsp_camera.py --port 8554 --silent

Every client gets its own media (not shared), so each connection plays the
file from its first frame: a test can compare what it received with the file
frame by frame, and a reconnect after a server restart starts on a keyframe.

`--silent` is a plain TCP server that accepts connections and never answers,
the "camera that hangs" the stall test needs; GStreamer is not involved.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading


def serve_silent(port: int) -> None:
    """Accept every connection, read and discard, never send a byte."""
    listener = socket.create_server(("127.0.0.1", port))
    held: list[socket.socket] = []  # keep the connections open: silence, not a reset

    def drain(conn: socket.socket) -> None:
        while conn.recv(4096):
            pass

    while True:
        conn, _ = listener.accept()
        held.append(conn)
        threading.Thread(target=drain, args=(conn,), daemon=True).start()


def serve_rtsp(port: int, mount: str, path: str) -> None:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f'( filesrc location="{path}" ! qtdemux ! h264parse '
        "! rtph264pay name=pay0 pt=96 config-interval=-1 )"
    )
    factory.set_shared(False)
    server.get_mount_points().add_factory(mount, factory)
    if server.attach(None) == 0:
        sys.exit(f"rtsp_camera: cannot listen on 127.0.0.1:{port}")
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    loop.run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mount", default="/clip")
    parser.add_argument("--file", help="H.264 in MP4 to serve")
    parser.add_argument("--silent", action="store_true", help="accept, never answer")
    args = parser.parse_args()
    if args.silent:
        serve_silent(args.port)
    elif not args.file:
        parser.error("--file is required unless --silent")
    else:
        serve_rtsp(args.port, args.mount, args.file)


if __name__ == "__main__":
    main()
