"""Channels from one platform service to another."""

from __future__ import annotations

import grpc

# Services sit behind headless Kubernetes Services, so DNS returns every pod: round_robin spreads calls over
# them (the default pick_first would send all of one client's calls to the first pod it reached).
SERVICE_CHANNEL_OPTIONS = [
    ("grpc.lb_policy_name", "round_robin"),
    ("grpc.max_receive_message_length", 32 * 1024 * 1024),
]


def service_channel(target: str) -> grpc.Channel:
    """A channel to another platform service at ``target`` (host:port)."""
    return grpc.insecure_channel(target, options=SERVICE_CHANNEL_OPTIONS)
