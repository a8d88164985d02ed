"""Beam's known start-up log chatter (import-time warnings about optional
clients, SDK workers' start-up lines): not news to a user, filtered wherever
Beam is imported (the CLI, inspect, report, the DirectRunner's workers)."""

import logging

# Start-up chatter of every SDK worker (and of the runner relaying it), not news.
NOISE = (
    "apitools not found",
    "No semi_persistent_directory found",
    "bigquery_storage_v1",
    "Could not find a compatible bson package",  # pymongo hidden (execution/lean_import.py)
)


def not_noise(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not any(text in message for text in NOISE)


def filter_start_up_noise() -> None:
    """Runner side: drop Beam's import-time warning about optional GCP clients
    (logged on the root logger) and the workers' start-up warnings the runner
    relays."""
    logging.getLogger().addFilter(not_noise)
    logging.getLogger("apache_beam.runners.portability.local_job_service").addFilter(not_noise)
    logging.getLogger("apache_beam.io.mongodbio").addFilter(not_noise)  # pymongo hidden at import
