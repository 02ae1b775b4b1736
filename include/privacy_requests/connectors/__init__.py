"""One module per kind of connector: ``sql`` (databases) and ``email`` (vendors)."""
