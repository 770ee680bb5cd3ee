"""Headless work named after the commands: a test can run any of it without a terminal."""
