"""One privacy request: its conf (``request``), lifecycle (start, review, fail, finish), the statutory clock,
the report and certificate, questions to a person (``asking``) and the removal of identities (``retention``)."""
