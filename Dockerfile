# syntax=docker/dockerfile:1

# Build stage: a virtualenv at /opt/venv with Runyard's dependencies, and Runyard itself
# installed in editable mode from /srv/runyard. Editable on purpose: app/store/db.py finds
# the Alembic scripts at <repo>/migrations, next to the app/ package, so the package must
# run from the source tree rather than from site-packages.
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

WORKDIR /srv/runyard

# Dependencies first, from pyproject.toml alone, so code changes reuse this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt

COPY alembic.ini README.md ./
COPY app ./app
COPY migrations ./migrations
COPY examples ./examples
RUN pip install --no-deps -e .


# Runtime stage: the same paths, owned by root, run by an unprivileged user.
FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RUNYARD_DATA_DIR=/var/lib/runyard \
    HOME=/var/lib/runyard

RUN groupadd --system --gid 10001 runyard \
 && useradd --system --uid 10001 --gid runyard --home-dir /var/lib/runyard \
      --shell /usr/sbin/nologin runyard \
 && install -d -o runyard -g runyard /var/lib/runyard

COPY --from=build /opt/venv /opt/venv
COPY --from=build /srv/runyard /srv/runyard

WORKDIR /srv/runyard
USER runyard

EXPOSE 2024

HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:2024/ok', timeout=4)"]

# --workers 2 needs DATABASE_URI (Postgres) and REDIS_URI; see docker-compose.yml.
CMD ["runyard", "serve", "--host", "0.0.0.0", "--port", "2024", "--workers", "2", "--config", "/srv/runyard/examples/langgraph.json"]
