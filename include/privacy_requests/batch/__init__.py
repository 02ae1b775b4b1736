"""Batches: many subjects in one run, set-based (one query per chunk of values for all subjects), with every
subject's result as accountable as a single request's. Framework-free like the rest of the engine."""
