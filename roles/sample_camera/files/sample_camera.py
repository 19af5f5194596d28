#!/usr/bin/python3
"""A sample IP camera for the lab and the tests: an RTSP server that loops real footage.

It serves an H.264 (or, with --codec h265, H.265) MP4 (the pedestrians of OpenCV's vtest.avi,
transcoded once) as a live
RTSP stream, like a real camera: the file is read at its own pace and looped seamlessly
(segment seeks), and every client joins the one shared live stream. Timestamps are taken
from the clock, so they keep rising across loops. Optional basic authentication makes the
server answer 401 to wrong credentials, as real cameras do.

Like most IP cameras it can also serve a second, smaller stream of the same scene (the
"substream" that recorders analyse instead of the main stream): --substream-file/-path.

Usage: sample_camera.py --file F [--codec h264|h265] [--port 8554] [--path /cam1] [--user U --password P]
                        [--substream-file F2 --substream-path /cam1_sub]
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstApp, GstRtspServer  # noqa: E402

LOG = logging.getLogger("sample-camera")


class LoopingSource:
    """Reads the file in a loop and hands each access unit to the current client media."""

    def __init__(self, path: str, codec: str = "h264") -> None:
        self.path = path
        self.pipeline = Gst.parse_launch(
            f'filesrc location="{path}" ! qtdemux ! {codec}parse config-interval=-1 '
            f"! video/x-{codec},stream-format=byte-stream,alignment=au "
            "! appsink name=sink sync=true max-buffers=50 emit-signals=true"
        )
        self.appsrc: GstApp.AppSrc | None = None
        self.caps: Gst.Caps | None = None
        sink = self.pipeline.get_by_name("sink")
        sink.connect("new-sample", self._on_sample)
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self._on_message)
        self.loops = 0

    def start(self) -> None:
        self.pipeline.set_state(Gst.State.PAUSED)
        self.pipeline.get_state(Gst.CLOCK_TIME_NONE)
        self._seek(Gst.SeekFlags.FLUSH | Gst.SeekFlags.SEGMENT)
        self.pipeline.set_state(Gst.State.PLAYING)

    def _seek(self, flags: Gst.SeekFlags) -> None:
        self.pipeline.seek(
            1.0,
            Gst.Format.TIME,
            flags | Gst.SeekFlags.KEY_UNIT,
            Gst.SeekType.SET,
            0,
            Gst.SeekType.NONE,
            -1,
        )

    def _on_message(self, _bus: Gst.Bus, message: Gst.Message) -> None:
        if message.type == Gst.MessageType.SEGMENT_DONE:
            self.loops += 1
            self._seek(Gst.SeekFlags.SEGMENT)  # non-flushing: playback goes on without a gap
        elif message.type == Gst.MessageType.ERROR:
            err, debug = message.parse_error()
            LOG.error("source pipeline error: %s (%s)", err, debug)
            sys.exit(1)

    def _on_sample(self, sink: GstApp.AppSink) -> Gst.FlowReturn:
        sample = sink.emit("pull-sample")
        if sample is None:
            return Gst.FlowReturn.OK
        self.caps = sample.get_caps()
        target = self.appsrc
        if target is not None:
            buf = sample.get_buffer().copy()
            buf.pts = buf.dts = Gst.CLOCK_TIME_NONE  # appsrc do-timestamp stamps the live time
            target.set_caps(self.caps)
            if target.push_buffer(buf) != Gst.FlowReturn.OK:
                self.appsrc = None
        return Gst.FlowReturn.OK


def build_factory(args: argparse.Namespace, source: LoopingSource) -> GstRtspServer.RTSPMediaFactory:
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        "( appsrc name=src is-live=true do-timestamp=true format=time "
        f"! {args.codec}parse config-interval=-1 ! rtp{args.codec}pay name=pay0 pt=96 config-interval=-1 )"
    )
    factory.set_shared(True)

    def on_configure(_factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
        appsrc = media.get_element().get_child_by_name("src")
        if source.caps is not None:
            appsrc.set_caps(source.caps)
        source.appsrc = appsrc
        LOG.info("a client started the stream")

    factory.connect("media-configure", on_configure)
    if args.user:
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_role_from_structure(
            Gst.Structure.new_from_string(
                "viewer, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
            )
        )
        factory.set_permissions(permissions)
    return factory


def build_server(args: argparse.Namespace, streams: dict[str, LoopingSource]) -> GstRtspServer.RTSPServer:
    """One RTSP server with a mount point per stream (path -> its looping source)."""
    server = GstRtspServer.RTSPServer()
    server.set_service(str(args.port))
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)
    for path, source in streams.items():
        server.get_mount_points().add_factory(path, build_factory(args, source))
    return server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", required=True)
    parser.add_argument("--codec", choices=("h264", "h265"), default="h264", help="the file's video codec")
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--path", default="/cam1")
    parser.add_argument("--user", default="")
    # From the environment by default (systemd's EnvironmentFile): not in the process's arguments.
    parser.add_argument("--password", default=os.environ.get("SAMPLE_CAMERA_PASSWORD", ""))
    parser.add_argument("--substream-file", default="", help="a smaller encoding of the same footage")
    parser.add_argument("--substream-path", default="/cam1_sub")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    Gst.init(None)
    streams = {args.path: LoopingSource(args.file, args.codec)}
    if args.substream_file:
        streams[args.substream_path] = LoopingSource(args.substream_file, args.codec)
    server = build_server(args, streams)
    if server.attach(None) == 0:
        LOG.error("cannot listen on port %s", args.port)
        return 1
    for source in streams.values():
        source.start()
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    for path, source in streams.items():
        LOG.info("serving %s as rtsp://0.0.0.0:%s%s", source.path, args.port, path)
    loop.run()
    for source in streams.values():
        source.pipeline.set_state(Gst.State.NULL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
