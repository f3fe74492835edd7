"""Real services for tests and the demo: a local OCI registry and (later) a Docker engine."""
