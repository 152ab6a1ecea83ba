"""docker-compose.yml describes the production-like stack; it is checked here, not run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ringlog.config import PART_ENV_VARS, environment_variables

ROOT = Path(__file__).resolve().parents[2]
INFRA = {"kafka", "redis", "postgres", "sqs"}


@pytest.fixture(name="compose", scope="module")
def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def ringlog_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Services built from this repository (the ones that run ringlog code)."""
    return {n: s for n, s in compose["services"].items() if n not in INFRA}


def test_infrastructure_services_present_with_pinned_images(compose: dict[str, Any]) -> None:
    """Kafka, Redis, PostgreSQL and an SQS emulator are declared, each with a pinned image."""
    services = compose["services"]
    assert set(services) >= INFRA
    for name in INFRA:
        image = services[name]["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name} image not pinned: {image}"


def test_kafka_runs_in_kraft_mode(compose: dict[str, Any]) -> None:
    """The broker is configured as a combined KRaft broker/controller, no ZooKeeper."""
    env = compose["services"]["kafka"]["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "zookeeper" not in compose["services"]


def test_ringlog_services_use_only_known_settings(compose: dict[str, Any]) -> None:
    """Every RINGLOG_* variable given to a ringlog service is one the settings tree reads."""
    known = environment_variables()
    services = ringlog_services(compose)
    assert services, "no ringlog service declared"
    for name, service in services.items():
        unknown = {k for k in service["environment"] if k.startswith("RINGLOG_")} - set(known)
        assert not unknown, f"{name} sets variables no setting reads: {sorted(unknown)}"


def test_ringlog_services_point_at_compose_infrastructure(compose: dict[str, Any]) -> None:
    """Each ringlog service gets Kafka, Redis, CRM and SQS addresses naming compose services."""
    for name, service in ringlog_services(compose).items():
        env = service["environment"]
        for part in ("kafka", "redis", "crm", "sqs"):
            var = PART_ENV_VARS[part]
            assert var in env, f"{name} lacks {var}"
        assert env["RINGLOG_KAFKA_BOOTSTRAP"].split(":")[0] == "kafka"
        assert "@postgres:" in env["RINGLOG_CRM_URL"]
        assert "//redis:" in env["RINGLOG_REDIS_URL"]
        assert "//sqs:" in env["RINGLOG_SQS_ENDPOINT_URL"]
        assert service.get("build") or service.get("image", "").startswith("ringlog")
