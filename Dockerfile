FROM python:3.11-slim
WORKDIR /srv
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PROMPTS_DIR=/srv/prompts
# Exactly the locked versions, each checked against its hash (scripts/lock refreshes the lock), in a layer
# of their own so a code change does not reinstall them.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY app ./app
COPY workers ./workers
COPY prompts ./prompts
COPY alembic ./alembic
COPY alembic.ini ./
# The project itself, adding no dependency the lock does not pin.
RUN pip install --no-deps .
# exec-form so SIGTERM reaches the process (the relay drains live calls on it)
CMD ["voice-agent", "serve", "--host", "0.0.0.0", "--port", "8080"]
