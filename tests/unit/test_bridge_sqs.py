"""The boto3 shell's pure rules: which failures are retried, how they are described (never a
credential), queue names and URLs, and the client's credentials."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
)
from pydantic import SecretStr

from ringlog.bridges.failures import describe, is_missing_queue, is_transient
from ringlog.bridges.sqs import is_fifo, is_url, make_client, queue_name_of
from ringlog.config import SqsSettings
from ringlog.errors import BrokerUnavailable, ConfigurationError


def client_error(code: str, status: int = 400, message: str = "", query: str = "") -> Exception:
    error = {"Code": code, "Message": message}
    if query:
        error["QueryErrorCode"] = query
    return ClientError(
        {"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}},  # type: ignore[typeddict-item]
        "SendMessageBatch",
    )


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), True),
        (ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"), True),
        (ConnectionResetError(), True),
        (BrokerUnavailable("127.0.0.1:9092", "down"), True),
        (client_error("RequestThrottled"), True),
        (client_error("ThrottlingException"), True),
        (client_error("InternalError", 500), True),
        (client_error("Whatever", 503), True),
        (client_error("AccessDenied", 403), False),
        (client_error("InvalidParameterValue"), False),
        (client_error("AWS.SimpleQueueService.NonExistentQueue"), False),
        (NoCredentialsError(), False),
        (ParamValidationError(report="bad"), False),
        (ValueError("x"), False),
    ],
)
def test_failures_worth_retrying(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient


def test_a_missing_queue_is_recognised_in_both_protocols() -> None:
    assert is_missing_queue(client_error("AWS.SimpleQueueService.NonExistentQueue"))
    assert is_missing_queue(client_error("QueueDoesNotExist"))
    assert is_missing_queue(
        client_error("QueueDoesNotExist", query="AWS.SimpleQueueService.NonExistentQueue")
    )
    assert not is_missing_queue(client_error("AccessDenied", 403))
    assert not is_missing_queue(ValueError("QueueDoesNotExist"))


def test_failures_are_described_by_code_and_message_with_key_ids_masked() -> None:
    said = describe(
        client_error(
            "InvalidClientTokenId",
            403,
            "The security token AKIAIOSFODNN7EXAMPLE included in the request is invalid.",
        )
    )
    assert said.startswith("InvalidClientTokenId: The security token AKIA…")
    assert "IOSFODNN7EXAMPLE" not in said
    assert describe(client_error("AccessDenied", 403)) == "AccessDenied"
    assert describe(ValueError("boom")) == "ValueError: boom"
    assert "ASIAZZZZZZZZZZZZZZZZ" not in describe(RuntimeError("key ASIAZZZZZZZZZZZZZZZZ"))


def test_queue_names_and_urls() -> None:
    url = "http://127.0.0.1:5000/123456789012/orders.fifo"
    assert queue_name_of(url) == "orders.fifo"
    assert queue_name_of(url + "/") == "orders.fifo"
    assert queue_name_of("orders") == "orders"
    assert is_url(url) and is_url("https://sqs.eu-west-1.amazonaws.com/1/q")
    assert not is_url("orders")
    assert is_fifo("orders.fifo") and not is_fifo("orders")


def test_keys_go_together_or_not_at_all() -> None:
    """One key without the other is a clear configuration error that names the settings,
    never their values."""
    for sqs in (  # both given, so a stack file or the environment cannot fill one in
        SqsSettings(access_key_id="AKIASENTINEL00000000", secret_access_key=None),
        SqsSettings(access_key_id=None, secret_access_key=SecretStr("sentinel-secret")),
    ):
        with pytest.raises(ConfigurationError) as refused:
            make_client(sqs)
        assert "RINGLOG_SQS_ACCESS_KEY_ID" in str(refused.value)
        assert "AKIASENTINEL" not in str(refused.value)
        assert "sentinel-secret" not in str(refused.value)


def test_the_client_uses_the_endpoint_region_and_keys_given() -> None:
    sqs = SqsSettings(
        endpoint_url="http://127.0.0.1:1",
        region="eu-west-1",
        access_key_id="AKIASENTINEL00000000",
        secret_access_key=SecretStr("sentinel-secret"),
        receive_wait_s=20,
    )
    client = make_client(sqs)
    try:
        assert client.meta.endpoint_url == "http://127.0.0.1:1"
        assert client.meta.region_name == "eu-west-1"
        assert client.meta.config.read_timeout > 20
        credentials = client._request_signer._credentials  # type: ignore[attr-defined]
        assert credentials.access_key == "AKIASENTINEL00000000"
        assert credentials.secret_key == "sentinel-secret"
        assert "sentinel-secret" not in repr(sqs)
    finally:
        client.close()
