"""iotask: cron-driven scheduled imports and exports for learning and HR systems."""

__version__ = "0.1.0"
