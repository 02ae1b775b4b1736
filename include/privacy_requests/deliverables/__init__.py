"""What people get and see: the access package (``access_package`` and its formats in ``package/``), the
overview the UI pages show, and the deadline alerts."""
