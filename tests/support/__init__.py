"""Helpers the tests share: real processes, sockets, RTSP cameras and pipelines,
each with a bounded lifetime. Fixtures that use them live in tests/conftest.py."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
