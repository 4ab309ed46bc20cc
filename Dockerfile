# syntax=docker/dockerfile:1.7
# Multi-stage: uv resolves and installs the locked dependencies (no dev group) in a builder;
# the runtime image gets only the virtualenv and the source, and runs as a non-root user.

FROM python:3.13-slim AS builder
COPY --from=ghcr.io/astral-sh/uv:0.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY core ./core
COPY modules ./modules
COPY handler.py ./
RUN uv sync --frozen --no-dev

FROM python:3.13-slim AS runtime
RUN groupadd --system ticketboss && useradd --system --gid ticketboss --home /app ticketboss \
    && mkdir -p /app/data && chown ticketboss:ticketboss /app/data
WORKDIR /app
COPY --from=builder --chown=ticketboss:ticketboss /app /app
ENV PATH="/app/.venv/bin:$PATH" PYTHONUNBUFFERED=1 ENVIRONMENT=production LOG_FORMAT=json
USER ticketboss
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status == 200 else 1)"]
# Migrations first (they are idempotent), then the server; exec so SIGTERM reaches uvicorn.
CMD ["sh", "-c", "ticketboss migrate && exec ticketboss serve --host 0.0.0.0 --port 8000 --workers ${WEB_WORKERS:-2}"]
