"""General helpers the package's parts share: files written atomically."""
