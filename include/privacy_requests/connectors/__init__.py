"""One connector per kind of dataset, all of one shape (``base.Connector``): ``sql`` (databases, with its
``preflight``, ``pair_update`` and ``verification``, the proof of erasure), ``vendor`` (erasure instructions sent
by email), ``manual`` (a person looks up and erases)."""
