"""Supply chain evidence: what is attached to a digest (signatures, SBOMs, attestations) and whether it holds.

Discovery (`discovery`) is the only module that talks to the registry; everything else is pure
functions over bytes, so the rules can be tested with real files and no network. Heavy libraries
(sigstore, jsonschema, cyclonedx) are imported inside functions only.
"""
