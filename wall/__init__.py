"""The wall server (aiohttp): REST API, WebSocket hub, live-video WebSocket, login and sessions."""
