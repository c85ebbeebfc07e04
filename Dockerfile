FROM python:3.11-slim
WORKDIR /srv
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PROMPTS_DIR=/srv/prompts
COPY pyproject.toml README.md ./
COPY app ./app
COPY workers ./workers
COPY prompts ./prompts
COPY alembic ./alembic
COPY alembic.ini ./
RUN pip install .
# exec-form so SIGTERM reaches the process (the relay drains live calls on it)
CMD ["voice-agent", "serve", "--host", "0.0.0.0", "--port", "8080"]
