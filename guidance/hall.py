"""The hall "speaker": the command hall's own audio. Every played broadcast is published with ``hall_url`` and the
wall page plays it (web/static/hall-audio.js); a speaker configured with ``adapter: hall`` therefore needs no
device and is acknowledged as handed to the wall."""

from __future__ import annotations

from guidance.speakers import Ack, PlayCommand


class HallAdapter:
    """Acks at once: the clip reaches the hall through the ``broadcasts`` stream and the wall's WebSocket."""

    async def play(self, command: PlayCommand) -> Ack:
        return Ack(command.command_id, True, "hall: sent to the wall")

    def online(self, speaker_id: str) -> bool:
        return True
