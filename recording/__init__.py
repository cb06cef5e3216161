"""Recording and playback (录像回放): every camera's stream as segment files, their index, retention, playback."""
