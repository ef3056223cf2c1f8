# syntax=docker/dockerfile:1
# The crackq image: every crackq service in docker-compose.yml runs it with a subcommand.
#   docker build -t crackq .                   # torch from PyPI (CUDA-capable, large)
#   docker build -t crackq --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu .
#                                               # CPU-only torch wheels, a much smaller image

# bookworm pinned: the plain 3.11-slim tag follows Debian's newest release, where the
# tcmalloc package is renamed (libtcmalloc-minimal4t64).
FROM python:3.11-slim-bookworm

ARG TORCH_INDEX_URL=https://pypi.org/simple

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    CRACKQ_DATA_DIR=/data \
    CRACKQ_EMBEDDED=never

# tcmalloc: `crackq worker` preloads it; glibc malloc fragments under many image decodes.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libtcmalloc-minimal4 \
    && rm -rf /var/lib/apt/lists/*

# torch in its own layer: the largest download and the one that changes least often.
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch>=2.4" "torchvision>=0.19"

WORKDIR /app
COPY pyproject.toml README.md ./
COPY worker/ worker/
COPY models/ models/
COPY db/ db/
RUN pip install ".[s3,openvino]" && rm -rf build ./*.egg-info

# worker/migrate.py finds migrations/ beside the worker package; PYTHONPATH=/app makes the
# package import from here, next to them, rather than from site-packages.
COPY alembic.ini ./
COPY migrations/ migrations/

# /data is created and owned here so a fresh named volume mounted on it inherits the owner.
RUN useradd --create-home --uid 10001 --user-group crackq \
    && mkdir -p /data /images \
    && chown crackq:crackq /data
USER crackq

ENTRYPOINT ["crackq"]
CMD ["--help"]
