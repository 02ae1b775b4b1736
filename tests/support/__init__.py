"""Helpers shared by the tests of every tier; the only test code a test module or a conftest may import.

paths          ROOT, DEMO_CONFIG (the demo configuration folder), DEMO_SEED (the demo shop's SQL)
ports          free_port()
smtp           SmtpServer (a real aiosmtpd server on 127.0.0.1), Received, smtp_connection_uri()
outbox         Outbox: the send handed to the engine's email rules (no server)
http_remote    Remote: a real HTTP server standing in for a webhook's remote system
s3_server      S3Server: moto's S3 endpoint in its own process
databases      throw-away PostgreSQL / MariaDB / SQLite databases (postgresql_engine, ENGINE_FACTORIES ...)
config_files   edit / problems_of / find: change a configuration folder's YAML, read load_config's problems
dag_runs       in-process DAG runs: clear() and resume() of an existing run, task_states(), table(),
               dagbag(), ConfigFolder
equivalence    "a batch does what N single requests do": snapshots, access packages, vendor instructions
fixtures       the pytest fixtures (smtp, shop_db, storage, config_folder, run_request), loaded as a plugin
               by tests/conftest.py
cluster        the Airflow cluster harness: airflow_world(), token(), answer() (human-in-the-loop), wait_until()
faults         the fault harness shared by the fault and Celery e2e modules (subjects, shop, checks)
drop_server    the regulator's DROP endpoint (a real HTTP server) and its first download
snowflake_server  snowflake_server(), SnowflakeServer: fakesnow's HTTP server (a Snowflake emulator) on 127.0.0.1
saas_servers   fake SaaS vendors (Mailchimp, Shopify, Stripe, a token endpoint) on real HTTP servers

tests/unit/test_test_layout.py enforces that no test module imports another test module or a conftest.
"""
