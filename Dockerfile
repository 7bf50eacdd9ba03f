# object2vec-service: the gateway with the bundled model baked in, serving dependencies only (no torch, no extras).
#   docker build -t object2vec-service .
#   docker run -p 8000:8000 object2vec-service                      # `o2v serve` on 0.0.0.0:8000, all routes
#   docker run -p 8080:8080 object2vec-service serve                # SageMaker's contract: /ping, /invocations
#   docker build --target train -t object2vec-service:train .       # + the train extra: POST /models/adapt, o2v adapt
# Settings are O2V_* variables (docs/settings.md), e.g. -e O2V_API_KEY=...; collections and drift
# state live in the volume /var/lib/o2v. The bundled model is package data (service/model/bundled), so installing the
# package installs it: the default O2V_MODEL_DIR serves it.

FROM python:3.11.11-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
# the package and its serving dependencies into a virtual environment the runtime stage copies whole; the Milvus
# client is in by default (O2V_VECTOR_STORE=milvus against a cluster, deploy/kubernetes), `--build-arg EXTRAS=` drops it
ARG EXTRAS=milvus
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir ".[${EXTRAS}]"

# the train extra (torch, onnx, optuna) for adaptation; PyPI's Linux torch wheel brings CUDA libraries (GBs), which
# run on CPU too: the serving image stays without it
FROM builder AS train-builder
RUN /opt/venv/bin/pip install --no-cache-dir ".[${EXTRAS},train]"

FROM python:3.11.11-slim-bookworm AS base
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    O2V_HOST=0.0.0.0 \
    O2V_PORT=8000 \
    O2V_WORKERS=1 \
    O2V_DATA_DIR=/var/lib/o2v
RUN groupadd --system --gid 10001 o2v \
 && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /var/lib/o2v o2v
COPY --from=builder /opt/venv /opt/venv
COPY docker/serve /usr/local/bin/serve
COPY docker/healthcheck /usr/local/bin/o2v-healthcheck
USER 10001:10001
WORKDIR /var/lib/o2v
VOLUME ["/var/lib/o2v"]
EXPOSE 8000 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 CMD ["o2v-healthcheck"]
CMD ["o2v", "serve"]

# `--target train`: the serving image whose venv also trains (adaptation jobs run niced beside the server)
FROM base AS train
COPY --from=train-builder /opt/venv /opt/venv

# the default target: serving only
FROM base
# SageMaker may then assign the port through SAGEMAKER_BIND_TO_PORT (inference pipelines); docker/serve listens on it
LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true
