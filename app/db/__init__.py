"""Persistence: SQLAlchemy models, the engine factory, migrations and small repositories."""
