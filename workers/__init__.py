"""Celery side-workers: post-call effects, the stuck-call sweep, and their CLI."""
