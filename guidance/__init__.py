"""Voice guidance (导听/喊话): TTS, the clip cache, message templates, speaker adapters and the broadcast policy.

"地面有人、空中有声音": a speaker at a camera site tells a vendor to leave. This package knows audio formats, speaker
protocols and the rules for when to speak; it knows nothing of the app (the composition root wires it).
"""
