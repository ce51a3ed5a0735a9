# One image for the three processes: `docker run shop:dev user_svc | order_svc | gateway`
# (add `migrate` to only migrate). Built by `make image`; see README "Deploy it".
#
# The base is an argument: python:3.11-slim by default; any Debian-like image with Python
# 3.11+ and its venv module works (this repository's image check uses a Debian bookworm root
# made by mmdebstrap, where no registry is reachable).
ARG BASE_IMAGE=python:3.11-slim

# --- builder: a virtualenv with the project and its runtime dependencies, nothing else -------
FROM ${BASE_IMAGE} AS builder

# Where pip finds packages: PyPI unless these say otherwise (a mirror, a local index, a
# proxy's CA bundle; `make image` passes the machine's pip configuration). Build arguments
# show in this stage's history only, which the final image does not carry.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_TRUSTED_HOST
ARG PIP_CERT
ARG PIP_CONSTRAINT
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

# The service user, a fixed unprivileged uid/gid (Kubernetes' runAsNonRoot checks the numeric
# USER below), and its data directory: made here, copied below, so that the final stage runs
# nothing (nothing a build mount could leave behind, no shell needed to build it).
RUN groupadd --gid 10001 shop \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin shop \
 && install -d -m 0700 /image/data

WORKDIR /src
# The runtime dependencies first, in a layer of their own: an edit to the code reinstalls
# the project alone, in seconds. They are the generated stubs (the `shop-api` package) and
# pyproject.toml's list, pinned there; nothing of the dev extra.
COPY gen/python/ gen/python/
COPY pyproject.toml ./
RUN python3 -m venv /app/.venv \
 && python3 -c "import tomllib; print(*(d for d in tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'] if d != 'shop-api'), sep='\n')" > /tmp/requirements.txt \
 && /app/.venv/bin/pip install --no-cache-dir ./gen/python -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt
# The project, an ordinary (not editable) install: the venv then holds all the code,
# compiled; pip and setuptools leave (nothing runs them at run time).
COPY shop_common/ shop_common/
COPY user_svc/ user_svc/
COPY order_svc/ order_svc/
COPY gateway/ gateway/
RUN /app/.venv/bin/pip install --no-cache-dir --no-deps . \
 && /app/.venv/bin/pip check \
 && /app/.venv/bin/pip uninstall --yes setuptools pip \
 && /app/.venv/bin/python -c "import user_svc.__main__, order_svc.__main__, gateway.__main__"

# --- the image: the base, the venv, the entrypoint ----------------------------------------
FROM ${BASE_IMAGE}

ARG BASE_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
# Where the source lives, when built from a clone that has a remote (`make image` asks git).
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="shop" \
      org.opencontainers.image.description="gRPC user and order services and their REST gateway: run user_svc, order_svc or gateway" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"

# The user (its passwd and group lines: libpq, for one, looks the uid up) and /data, 0700 as
# the services make it themselves.
COPY --from=builder /etc/passwd /etc/group /etc/
# (/data inside a directory copied whole: COPY keeps the mode of what it copies, not of the
# directory it is given.)
COPY --from=builder --chown=10001:10001 /image/ /
COPY --from=builder /app/.venv /app/.venv
COPY deploy/docker/entrypoint.sh /app/entrypoint.sh

# Listening on every interface of the container, on the ports the README lists; the
# health-only ports answer grpc.health.v1 in plaintext for Kubernetes' gRPC probes.
# SHOP_AUTH is left to the deployer on purpose: development identity (the default) refuses
# a non-loopback address with an error naming SHOP_AUTH=jwt and SHOP_AUTH_DEV_ANY_ADDRESS.
# The only writes are under SHOP_DATA_DIR (databases, the page-token key), so the root
# filesystem may be mounted read-only; bytecode is compiled at build time, none is written.
ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SHOP_DATA_DIR=/data \
    USER_SVC_LISTEN=0.0.0.0:50051 \
    USER_SVC_HEALTH_LISTEN=0.0.0.0:8081 \
    USER_SVC_ADMIN_LISTEN=0.0.0.0:9091 \
    ORDER_SVC_LISTEN=0.0.0.0:50052 \
    ORDER_SVC_HEALTH_LISTEN=0.0.0.0:8082 \
    ORDER_SVC_ADMIN_LISTEN=0.0.0.0:9092 \
    GATEWAY_LISTEN=0.0.0.0:8080 \
    GATEWAY_ADMIN_LISTEN=0.0.0.0:9093
EXPOSE 50051 8081 9091 50052 8082 9092 8080 9093

VOLUME ["/data"]
WORKDIR /app
USER 10001:10001
# The services drain on SIGTERM: NOT_SERVING for SHOP_DRAIN_SECONDS (0 by default), then
# in-flight calls get SHOP_GRACE_SECONDS (5): within `docker stop`'s 10 s unless raised.
STOPSIGNAL SIGTERM
# No HEALTHCHECK: which port and protocol to ask depends on the process the command names;
# Compose and Kubernetes define their own checks against the health-only ports.
ENTRYPOINT ["/app/entrypoint.sh"]
