"""Airflow Privacy Requests: the engine behind the ``privacy_request`` DAG.

The package is plain Python: configuration, graph, policies, masking, connectors and the request store
know nothing of Airflow (a test enforces it). The ``airflow`` package is the only Airflow wing: hooks,
operators, human-in-the-loop and the DAG factory adapt the engine to Airflow.
"""
