"""The collection steps (access and erasure of one collection) and the erasure plan a dry run records."""
