"""The scripted OpenAI-compatible server used by tests and by `--demo`."""
