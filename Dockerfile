# biapy-cls with CUDA: PyTorch 2.5.1, CUDA 12.4, cuDNN 9 (NVIDIA driver >= 550 on the host).
# Build:  docker build -t biapy-cls .
# Run:    docker run --rm --gpus all -v /data:/data biapy-cls --config /data/x.yaml --result_dir /data/out --name job --run_id 1 --gpu 0
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

LABEL org.opencontainers.image.title="biapy-cls" \
      org.opencontainers.image.description="Train and evaluate 2D/3D biomedical image classifiers (BiaPy-compatible CLI)"

# Matplotlib and friends need a writable home when the container runs as the host user (--user).
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib

WORKDIR /opt/biapy-cls
COPY pyproject.toml README.md ./
COPY biapy_cls ./biapy_cls
COPY templates ./templates
COPY scripts ./scripts

# What pyproject.toml declares, with the extras of the README's install line (tests/test_docker.py
# keeps the two the same); torch comes with the base image and satisfies torch>=2.4.
RUN python -m pip install ".[nifti]" && biapy --version

ENTRYPOINT ["biapy"]
CMD ["--help"]
