"""Webhooks: signed outbound deliveries through an outbox, and signed inbound reports."""
