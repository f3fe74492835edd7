"""The nightly registry audit: every tag of every policy image, verified once per digest, with history
in SQLite, drift against the previous run, and Markdown/HTML/JSON reports; plus `imgcheck diff`.

Modules, one job each: `store` (SQLite history and migrations), `cache` (content-addressed manifests
and configs), `inventory` (tags -> digests, selection, shards), `runner` (verify each digest once),
`drift`, `model` (the audit report and its JSON form), `render_*` (Markdown, HTML, chart), `diff`,
`command` (what the CLI calls).
"""
