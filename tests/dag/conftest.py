"""The dag tier runs the DAGs in-process with dag.test(); its fixtures (smtp, shop_db, storage, config_folder,
run_request) live in tests/support/fixtures.py, loaded for every tier by tests/conftest.py."""
