"""Camera sources (RTSP via PyAV), reconnect and health, packet fan-out, fMP4 live relay, frame sampling for
analysis."""
