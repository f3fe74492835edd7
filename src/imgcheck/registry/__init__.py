"""OCI distribution client: verified reads by digest, tags, referrers, auth (see client.py)."""
