# syntax=docker/dockerfile:1
#
# durable-state-store: `statestore serve` on 0.0.0.0:8080 against DynamoDB.
#
#   docker build -t durable-state-store .
#   docker run --rm -p 127.0.0.1:8080:8080 -e AWS_REGION=eu-west-1 durable-state-store
#
# Both stages use the same base, pinned by its exact version tag and by the digest of the
# multi-architecture index (linux/amd64 and linux/arm64), so a rebuild gets the same base.
# To upgrade, change the tag and the digest together in both FROM lines.

# ---------------------------------------------------------------------------------------
# builder: installs the locked dependencies, then the project, into /opt/venv.
# requirements/runtime.txt pins every dependency (and the build backend) with hashes, to the
# versions CI tested, wheels only: no resolver, no compiler, nothing unpinned (scripts/lock.sh).
# ---------------------------------------------------------------------------------------
FROM python:3.11.17-slim-bookworm@sha256:2333bd330d12de02514770b3585cad313644316047cdee24a7acfdece6de6efb AS builder

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src

# The dependencies first, in a layer of their own: a change to app/ reuses it.
COPY requirements/runtime.txt ./requirements/
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --require-hashes -r requirements/runtime.txt

# A regular (non-editable) install of the project alone: /opt/venv then holds the `app` package
# and the `statestore` console script, with bytecode compiled at install time, since the
# runtime user cannot write __pycache__ there. `pip check` fails the build if the lock missed a
# dependency. pip and setuptools are only needed to install, so they leave the venv afterwards.
COPY pyproject.toml README.md ./
COPY app ./app
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation . \
    && /opt/venv/bin/pip check \
    && /opt/venv/bin/pip uninstall --yes pip setuptools

# ---------------------------------------------------------------------------------------
# runtime: the slim base, a non-root user and the venv. No pip install, no apt, no compiler.
# ---------------------------------------------------------------------------------------
FROM python:3.11.17-slim-bookworm@sha256:2333bd330d12de02514770b3585cad313644316047cdee24a7acfdece6de6efb AS runtime

LABEL org.opencontainers.image.title="durable-state-store" \
      org.opencontainers.image.description="HTTP service that keeps the latest protobuf state of each persistence id in DynamoDB" \
      org.opencontainers.image.licenses="Apache-2.0"

# STATESTORE_BACKEND=dynamodb: a container that forgot its settings must fail loudly on a
# missing table, not write to an SQLite file that dies with the container.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH="/opt/venv/bin:${PATH}" \
    STATESTORE_BACKEND=dynamodb \
    STATESTORE_HOST=0.0.0.0 \
    STATESTORE_PORT=8080

# A fixed uid/gid (10001) so volume ownership and Kubernetes' runAsNonRoot/runAsUser are
# predictable. Its home is the working directory, the only place it may write: with
# STATESTORE_BACKEND=sqlite the default ./data/statestore.db lands in
# /var/lib/statestore/data (mount a volume there to keep it).
RUN groupadd --system --gid 10001 statestore \
    && useradd --system --uid 10001 --gid statestore --home-dir /var/lib/statestore \
       --create-home --shell /usr/sbin/nologin statestore

COPY --from=builder /opt/venv /opt/venv

WORKDIR /var/lib/statestore
USER 10001:10001

EXPOSE 8080

# The slim image has no curl: probe /healthz with the standard library. http.client ignores
# HTTP(S)_PROXY, so a proxy configured for AWS traffic cannot break the probe.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import http.client, os; c = http.client.HTTPConnection('127.0.0.1', int(os.environ.get('STATESTORE_PORT', '8080')), timeout=4); c.request('GET', '/healthz'); raise SystemExit(0 if c.getresponse().status == 200 else 1)"]

# Exec form: `statestore` is PID 1 and receives SIGTERM from `docker stop` directly, so
# uvicorn finishes in-flight requests and the process exits 0.
ENTRYPOINT ["statestore"]
CMD ["serve"]
