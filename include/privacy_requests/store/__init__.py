"""The encrypted per-request store over any ObjectStoragePath (``store``), every key in it (``layout``) and the
claims on request ids (``in_flight``)."""
