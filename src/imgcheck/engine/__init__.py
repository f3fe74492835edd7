"""The container-engine edge: docker-py discovery, pulls by digest, locked-down runs, cleanup.

Nothing here imports docker at module import time (`imgcheck --version` must stay fast); every
function that talks to the engine imports it lazily.
"""
