"""Airflow Privacy Requests: the engine behind the ``privacy_request`` DAG.

The package is plain Python: configuration, graph, policies, masking, connectors and the request store
know nothing of Airflow. ``operators`` and ``dag_factory`` adapt them to Airflow.
"""
