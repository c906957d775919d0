# clm-hub daemon image: build a wheel, install it into a slim runtime as a non-root user.
#
#   docker build -t clm-hub .
#   docker run -v ./hub.toml:/etc/clm-hub/hub.toml:ro -p 8787:8787 clm-hub
#
# Config: the TOML file mounted at $CLM_HUB_CONFIG, overridden by CLM_HUB_* variables
# (secrets: environment or `*_file` keys pointing at mounted secrets). `compose.yaml` at the
# repository root runs it with PostgreSQL.
FROM python:3.11-slim AS build
WORKDIR /src
RUN pip install --no-cache-dir build
COPY pyproject.toml README.md ./
COPY src ./src
COPY plugins ./plugins
RUN python -m build --wheel --outdir /wheels

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN useradd --create-home --uid 10001 --user-group clm
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir "$(ls /wheels/*.whl)[postgres]" && rm -rf /wheels
USER clm
# The default SQLite store (`sqlite:///clm-hub.sqlite3`) lands here: mount a volume on it,
# or use PostgreSQL.
WORKDIR /home/clm
ENV CLM_HUB_CONFIG=/etc/clm-hub/hub.toml \
    CLM_HUB_LOG_FORMAT=json \
    CLM_HUB_HTTP_HOST=0.0.0.0 \
    CLM_HUB_HTTP_PORT=8787
EXPOSE 8787
# Liveness only (/readyz also fails while a tool is down, which a restart would not fix).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('CLM_HUB_HTTP_PORT', '8787'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"]
# SIGTERM (docker stop) finishes or safely abandons the work in flight and exits 0 within
# [daemon] shutdown_grace (30 s by default): give `docker stop` a longer --time than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["clm-hub"]
CMD ["run"]
