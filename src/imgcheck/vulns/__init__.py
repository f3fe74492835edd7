"""Trivy results into verdicts: report parsing (JSON, SARIF, cosign-vuln), binding to a digest,
waivers, VEX, and the pure evaluation the `vulnerabilities` rule renders.

Layout: `model` (parsed data), `trivy_json` / `sarif` / `attached` (one parser per input form),
`files` (bounded reading at the edge), `fromregistry` (which attached reports may speak for the
image: signature, subject and opt-in), `binding`, `waivers`, `vex`, `purl`, `evaluate` (pure
verdict logic) and `message` (one-line summary and bounded details).
"""
