"""Connector plug-ins: one module per connector type, all built on connectors.base."""
