# The detector as an HTTP service (CPU). Build and run:
#   docker build -t deepfake-detector .
#   docker run --rm -p 127.0.0.1:8000:8000 -v "$PWD/models:/models:ro" \
#     -e DEEPFAKE_MODEL=/models/model.onnx -e DEEPFAKE_API_KEY=change-me-please deepfake-detector
# Inside a container the server must listen on 0.0.0.0 (a loopback-only server cannot be reached through the
# published port); keep it private with the `-p 127.0.0.1:...` mapping above, an API key, or both.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLBACKEND=Agg \
    WANDB_MODE=disabled

# libglib2.0-0: needed by OpenCV's wheels on slim images (face_crop)
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# CPU-only torch first, from the PyTorch CPU index (the default index would pull the multi-GB CUDA build)
RUN pip install torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/cpu

# the package (its configs ship inside it) and its `serve` extra (FastAPI, uvicorn, ONNX Runtime, PyAV);
# the source is built in /tmp/src and removed: the service runs from the installed package
COPY pyproject.toml README.md /tmp/src/
COPY conf /tmp/src/conf
COPY deepfake_lightning /tmp/src/deepfake_lightning
COPY hydra_plugins /tmp/src/hydra_plugins
RUN pip install "/tmp/src[serve]" && rm -rf /tmp/src

RUN useradd --create-home --uid 10001 app && mkdir -p /app/logs /models && chown -R app /app/logs
USER app

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"

# ckpt_path comes from DEEPFAKE_MODEL (conf/serve.yaml); any other setting can be appended as key=value
CMD ["python", "-m", "deepfake_lightning.serve", "host=0.0.0.0", "port=8000"]
