# syntax=docker/dockerfile:1
# dancu-gateway: the virtualenv is built in one stage and run in a slim one, as a non-root user.
#   docker build -t dancu-gateway .
#   docker run -p 8000:8000 dancu-gateway                      # dev: seeds the mock, prints a demo client
#   docker run -e DANCU_PROFILE=prod -e DANCU_DATABASE_URL=... dancu-gateway --workers 4   # see docs/deploy.md
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /opt/dancu
# The dependencies in a layer of their own, rebuilt only when the lock changes: exactly the pinned versions,
# each checked against its hash (requirements/main.lock, written by `make lock`).
COPY pyproject.toml README.md ./
COPY requirements/main.lock ./requirements/main.lock
RUN pip install --require-hashes --requirement requirements/main.lock
COPY app ./app
COPY vnid ./vnid
COPY mock_csdlqg ./mock_csdlqg
COPY migrations ./migrations
COPY scripts/demo_hint.py ./scripts/demo_hint.py
COPY docker/entrypoint.sh ./docker/entrypoint.sh
# Editable, so the tree stays in /opt/dancu: `dancu db upgrade` finds migrations/ next to the app package.
# Compiled now: at run time the tree belongs to root and the server cannot write there.
RUN pip install --no-deps --editable . \
    && chmod 0755 docker/entrypoint.sh \
    && python -m compileall -q app vnid mock_csdlqg migrations

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8000
RUN groupadd --system --gid 10001 dancu \
    && useradd --system --uid 10001 --gid dancu --home-dir /var/lib/dancu --create-home \
        --shell /usr/sbin/nologin dancu \
    && mkdir -p /var/lib/dancu/var \
    && chown -R dancu:dancu /var/lib/dancu
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/dancu /opt/dancu
# The working directory holds ./var (the dev databases, generated dev keys, checkpoint files): a volume.
WORKDIR /var/lib/dancu
VOLUME ["/var/lib/dancu/var"]
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/healthz', timeout=4)"]
ENTRYPOINT ["/opt/dancu/docker/entrypoint.sh"]
CMD []
