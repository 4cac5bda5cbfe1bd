"""Alembic environment and versions, shipped in the package for `iotask db upgrade`."""
