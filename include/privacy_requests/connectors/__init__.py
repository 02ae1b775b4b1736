"""One connector per kind of dataset, all of one shape (``base.Connector``): ``sql`` (databases), ``vendor``
(erasure instructions sent by email), ``manual`` (a person looks up and erases)."""
