"""The HTTP API: ingest of call requests and Retell webhooks, health and metrics."""
