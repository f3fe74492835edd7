"""CI integrations: what imgcheck does beyond its reports when it runs inside a CI system."""
