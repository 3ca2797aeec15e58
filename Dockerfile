# syntax=docker/dockerfile:1
#
# The shardlimit demo server: a builder stage compiles the wheel with maturin, the
# runtime stage is a distroless Python image running as a non-root user.
#
#   docker build -t shardlimit:latest .          (make docker-build)
#   docker run --rm -p 8080:8080 shardlimit      (memory store, one worker)
#   docker compose -f deployments/docker-compose.yml up --build   (demo + Redis)
#
# The extension is built for one CPython version (3.11, as the virtualenv of the
# tests), so both stages use Debian 12's Python 3.11 and glibc.

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/python3-debian12:nonroot

# --- builder: the wheel, and the runtime's site-packages ------------------------------
FROM ${RUST_IMAGE} AS builder

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /venv \
    && /venv/bin/pip install --no-cache-dir maturin==1.16.0

WORKDIR /src
# What the wheel is built from (see .dockerignore, which admits nothing else).
COPY Cargo.toml Cargo.lock pyproject.toml README.md requirements-dev.txt ./
COPY rust ./rust
COPY benches ./benches
COPY python ./python

RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    /venv/bin/maturin build --release --locked --interpreter /venv/bin/python --out /dist

# The package with the demo server's dependencies (falcon, gunicorn, PyYAML, redis,
# prometheus-client), pinned by the same file as the tests.
RUN /venv/bin/pip install --no-cache-dir --target /install \
        --constraint requirements-dev.txt \
        "$(ls /dist/shardlimit-*.whl)[server]"

# --- runtime ----------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}

COPY --from=builder /install /app/site-packages
COPY configs /app/configs

ENV PYTHONPATH=/app/site-packages \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CONFIG_FILE=/app/configs/config.yaml \
    SERVER_PORT=8080

WORKDIR /app
# distroless' "nonroot" user; the image's files are root's and read-only to it.
USER 65532:65532
EXPOSE 8080

HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/bin/python3.11", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('SERVER_PORT', '8080')}/healthz\", timeout=2)"]

# `shardlimit serve` finds /app/configs/gunicorn.conf.py from the working directory.
# Heartbeat files go to /dev/shm, so a slow disk never makes a worker look dead.
# SIGTERM (docker stop) drains requests in flight and exits 0 (graceful_timeout 25s).
ENTRYPOINT ["/usr/bin/python3.11", "-m", "shardlimit"]
CMD ["serve", "--worker-tmp-dir", "/dev/shm"]
