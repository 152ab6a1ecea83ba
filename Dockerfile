# One image for every ringlog process: the entrypoint is `ringlog`, the command picks the process.
#   docker build -t ringlog:local .
#   docker run --env-file deploy/ringlog.env -p 8000:8000 ringlog:local          # the API
#   docker run --env-file deploy/ringlog.env ringlog:local worker               # or projector, bridge,
#                                                                                # topics ensure, lag …
# Configuration is the environment only (deploy/ringlog.env.example lists it).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ringlog ./ringlog
RUN pip install --no-cache-dir . && useradd --system --home-dir /var/lib/ringlog --create-home ringlog
USER ringlog
ENV RINGLOG_HOME=/var/lib/ringlog RINGLOG_API_HOST=0.0.0.0
EXPOSE 8000
# exec form: the process itself gets SIGTERM and stops cleanly within 10 s
ENTRYPOINT ["ringlog"]
CMD ["api"]
