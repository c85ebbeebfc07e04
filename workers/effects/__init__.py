"""The side effects as plain functions: each takes a session factory (and what else it needs) and is
idempotent per (call, effect), so Celery tasks are thin wrappers and tests call these directly."""
