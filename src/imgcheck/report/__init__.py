"""One Report model and its renderers (one module per format)."""
