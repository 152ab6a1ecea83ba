# One image for every ringlog process: `docker run ringlog:local worker` (or api, projector,
# bridge, topics ensure …). Configuration comes from the environment (deploy/ringlog.env.example).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ringlog ./ringlog
RUN pip install --no-cache-dir . && useradd --system --home-dir /var/lib/ringlog --create-home ringlog
USER ringlog
ENV RINGLOG_HOME=/var/lib/ringlog RINGLOG_API_HOST=0.0.0.0
EXPOSE 8000
# exec form: the process gets SIGTERM itself and stops cleanly within 10 s
ENTRYPOINT ["ringlog"]
CMD ["api"]
