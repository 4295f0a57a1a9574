# syntax=docker/dockerfile:1
# adafocus-stream on CPU. Build from the repository root:
#   docker build -f deploy/docker/cpu.Dockerfile -t adafocus-stream:cpu .
# The config is mounted read-only at /etc/adafocus/config.yaml.
FROM python:3.11-slim-bookworm

# CPU-only PyTorch wheels: the default ones bundle CUDA (gigabytes this image never uses).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 adafocus \
    && useradd --system --uid 10001 --gid adafocus --create-home --home-dir /home/adafocus adafocus

WORKDIR /opt/adafocus
COPY pyproject.toml README.md ./
COPY adafocus/ adafocus/
COPY stream/ stream/
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch>=2.3,<2.15" "torchvision>=0.18,<0.30" \
    && pip install .

USER 10001:10001
# Multiprocess metrics live in a writable scratch dir, so the root filesystem can be read-only.
ENV PROMETHEUS_MULTIPROC_DIR=/tmp/adafocus-metrics
EXPOSE 5556 9108
# Liveness (/livez: the worker ticks); a camera that is down does not make it unhealthy.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9108/livez', timeout=2)"]
ENTRYPOINT ["adafocus-stream"]
CMD ["run", "--config", "/etc/adafocus/config.yaml"]
