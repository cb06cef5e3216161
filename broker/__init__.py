"""The event bus (Redis Streams) and MQTT bridge, plus embedded redis-server/mosquitto for the one-command default.
Knows no domain."""
