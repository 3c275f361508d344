# resume-collector in a container (docs/operations.md, "Docker"):
#   docker build -t resume-collector .
#   docker run -d --name collector --env-file collector.env \
#     -v collector-data:/data -v "$PWD/collector.toml:/config/collector.toml:ro" resume-collector
# The config's relative paths (training-data/, its state/) land in the /data volume.
ARG PYTHON_VERSION=3.11

# --- build: a virtual environment holding the service and its dependencies (all wheels) -----
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The dependencies come from the lock (exact versions with hashes), as in `make test`; the
# project itself is built against the lock's setuptools, with no dependency resolved here.
COPY requirements/runtime.txt ./requirements/
RUN python -m venv /opt/resume-collector \
    && /opt/resume-collector/bin/pip install --no-cache-dir --require-hashes --no-deps \
        -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY collector ./collector
COPY processors ./processors
RUN /opt/resume-collector/bin/pip install --no-cache-dir --no-deps --no-build-isolation .

# --- run: the venv, tini and an unprivileged user; no source, no pip cache, no compiler -----
FROM python:${PYTHON_VERSION}-slim-bookworm
# tini is PID 1: it forwards SIGTERM (drain) and SIGHUP (reload) to the service and reaps
# zombies; the service handles the signals itself.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini=0.19.* \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin collector \
    && mkdir -p /data /config /srv/resume-collector/inbox \
    && chown 10001:10001 /data
COPY --from=build /opt/resume-collector /opt/resume-collector
ENV PATH=/opt/resume-collector/bin:$PATH \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /data
# The inbox where examples/production.toml reads it: mount the host's inbox here, read-only.
VOLUME ["/data", "/config", "/srv/resume-collector/inbox"]
# /metrics and /healthz when [metrics] enabled = true (host = "0.0.0.0" to publish the port).
EXPOSE 9464
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["resume-collector", "healthcheck", "--config", "/config/collector.toml"]
ENTRYPOINT ["tini", "--", "resume-collector"]
CMD ["run", "--config", "/config/collector.toml"]
