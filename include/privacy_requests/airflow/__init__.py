"""The Airflow wing: the only part of the project that imports Airflow (the way Cosmos keeps its rendering in
``cosmos/airflow``). Hooks own connections, operators only orchestrate the engine, the DAG factory renders
the dataset graph into tasks, and ``hitl`` parks a task until a person answers."""
