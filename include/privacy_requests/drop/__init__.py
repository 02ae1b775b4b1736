"""California's DROP (Delete Request and Opt-out Platform) for data brokers: the lists of hashed identifiers,
matched against the broker's own tables, answered per work item (docs/drop.md)."""
