"""`voice-agent doctor`: checks a configuration before a deploy, one line per check (app/doctor/runner.py)."""
