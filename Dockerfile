# The c360 API. With docker-compose.yml it runs against Neo4j; alone it uses the embedded store.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY identity_graph ./identity_graph
COPY graph_api ./graph_api
COPY schema.graphql* ./
RUN pip install ".[rust]" \
    && useradd --create-home --uid 10001 c360 \
    && mkdir -p /data && chown c360 /data

USER c360
ENV C360_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]
CMD ["c360", "serve", "--host", "0.0.0.0", "--port", "8000"]
