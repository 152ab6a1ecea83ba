FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ringlog ./ringlog
RUN pip install --no-cache-dir .
ENTRYPOINT []
CMD ["ringlog", "--help"]
