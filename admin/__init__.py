"""Run the centre from the browser: the running configuration (cameras, zones, users) changed while citywall runs.

``admin.changes`` is the pure core (old settings, new settings → what to do); ``admin.running`` validates,
persists, audits and applies a change and tells the other processes; ``admin.probe`` tests a camera URL with our
RTSP client; ``admin.api`` is the wall server's admin API.
"""
