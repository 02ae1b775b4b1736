"""Fake vendor APIs on loopback for the SaaS connector's tests, written from the vendors' public API
documentation (not from our SaaS configs): authentication enforced, real pagination, 404 for unknown ids,
429 with Retry-After on demand, every write recorded."""
