# syntax=docker/dockerfile:1
# adafocus-stream on an NVIDIA GPU. Build from the repository root:
#   docker build -f deploy/docker/cuda.Dockerfile -t adafocus-stream:cuda .
# Runs with `--gpus all` (docker) or an nvidia.com/gpu request (Kubernetes). The
# base image brings PyTorch, torchvision and the CUDA runtime; pip keeps them.
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

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
RUN pip install .

USER 10001:10001
ENV PROMETHEUS_MULTIPROC_DIR=/tmp/adafocus-metrics
EXPOSE 5556 9108
# Liveness (/livez: the worker ticks); a camera that is down does not make it unhealthy.
HEALTHCHECK --interval=10s --timeout=3s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9108/livez', timeout=2)"]
ENTRYPOINT ["adafocus-stream"]
CMD ["run", "--config", "/etc/adafocus/config.yaml"]
