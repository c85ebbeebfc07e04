"""Steps every end-to-end call repeats: answer and hear the greeting out, speak a turn and hear the reply."""

from __future__ import annotations

from app.sim.twilio_caller import SimulatedCaller

LOUD = bytes([0x10, 0x90] * 4000)  # 1 s of loud mu-law that the simulated server VAD hears as speech


async def answered(caller: SimulatedCaller) -> None:
    """Dial, open the stream, and wait until the greeting has finished playing."""
    await caller.dial()
    await caller.connect()
    await caller.wait_agent_audio(timeout=10)  # the greeting began (silence before it is not its end)
    await caller.wait_agent_silent(quiet=0.3, timeout=10)


async def speak_and_hear_reply(caller: SimulatedCaller) -> float:
    """Say one caller turn and wait for the agent's reply to start; returns when its audio arrived."""
    caller.say(LOUD)
    return await caller.wait_agent_audio(timeout=10, since=await caller.wait_said(timeout=5))
