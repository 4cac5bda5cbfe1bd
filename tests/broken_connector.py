"""A module that declares no connector, for the registry's error path."""

VALUE = 1
