"""Task names, shared by the workers and by publishers (the relay's outbox) that must not import them."""

from __future__ import annotations

PERSIST_EVENT = "voice_agent.persist_event"
POST_CALL = "voice_agent.post_call"
SYNC_CRM = "voice_agent.sync_crm"
DELIVER_SUMMARY = "voice_agent.deliver_summary"
COMPLETE_REMOTE_CALL = "voice_agent.complete_remote_call"
SWEEP_STUCK_CALLS = "voice_agent.sweep_stuck_calls"
ALERT_STAFF = "voice_agent.alert_staff"
PURGE_EXPIRED_CALLS = "voice_agent.purge_expired_calls"
