"""Sinks own files and uploads: append-only writes made durable by a flush."""
