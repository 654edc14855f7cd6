# One image for the API and the engine workers: `asktell serve` or `asktell worker`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    OMP_WAIT_POLICY=PASSIVE

WORKDIR /app
RUN useradd --create-home --uid 10001 asktell

# The torch build decides CPU or GPU workers: pass e.g. --build-arg TORCH="torch==2.13.0" with
# PIP_INDEX_URL/PIP_EXTRA_INDEX_URL pointing at the CPU or CUDA wheels you want.
ARG TORCH=torch
RUN pip install "$TORCH"

COPY clients/python /app/clients/python
RUN pip install /app/clients/python

COPY pyproject.toml README.md /app/
COPY service /app/service
COPY migrations /app/migrations
RUN pip install /app

USER asktell
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"
ENTRYPOINT ["asktell"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
