"""The offline engine: a Realtime-protocol model that listens (pocketsphinx), decides (a dialogue policy
driven by the session's tools and instructions) and speaks (espeak-ng). See server.py."""
