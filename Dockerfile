# One image recipe for the three services; SERVICE picks which. Build from the repository root:
#   docker build --build-arg SERVICE=telephony -t aura-telephony:$(git rev-parse --short HEAD) .
# (SERVICE is telephony, llm or memory; `make images` builds all three.) BASE_IMAGE needs
# python3 with its venv module (Debian's python3 and python3-venv, or an official python
# image); `make base-image` builds one where no registry can be reached.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ARG SERVICE
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/aura
WORKDIR /src
COPY pyproject.toml uv.lock ./
COPY libs libs
COPY services services
# The optional "ca" secret is a CA bundle for builds behind a TLS-intercepting proxy.
RUN --mount=type=secret,id=ca,required=false \
    case "$SERVICE" in telephony|llm|memory) ;; \
      *) echo "--build-arg SERVICE=telephony|llm|memory is required" >&2; exit 1;; esac \
    && if [ -s /run/secrets/ca ]; then export SSL_CERT_FILE=/run/secrets/ca PIP_CERT=/run/secrets/ca; fi \
    && python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir --quiet uv==0.13.9 \
    && /opt/uv/bin/uv sync --frozen --no-dev --no-editable --package "aura-$SERVICE" --python python3 \
    && ln -s "aura-$SERVICE" /opt/aura/bin/aura-service

FROM ${BASE_IMAGE}
COPY --from=build /opt/aura /opt/aura
ENV PATH=/opt/aura/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 LOG_FORMAT=json
# A fixed numeric non-root user: the root filesystem can be read-only, nothing is written.
# Ports are the service's settings (PORT, LLM_PORT, ...), which the chart sets.
USER 10001:10001
ENTRYPOINT ["/opt/aura/bin/aura-service"]
