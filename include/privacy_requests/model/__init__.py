"""What the user describes: the configuration folder (settings, loading, checks), the dataset graph, policies,
masking strategies, values and date arithmetic. Imports nothing else of the engine but ``errors``."""
