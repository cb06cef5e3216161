"""Demo cameras: deterministic synthetic street scenes (H.264, 720p) and a private GStreamer RTSP server."""
