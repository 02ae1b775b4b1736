# Airflow Privacy Requests on the official Airflow image.
FROM apache/airflow:3.3.2-python3.11

USER root
# mysqlclient (MySQL provider) builds against MariaDB Connector/C.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libmariadb-dev pkg-config build-essential \
 && rm -rf /var/lib/apt/lists/*
USER airflow

# The runtime pins only: test and development tools live in requirements-dev.txt, never in the image.
COPY --chown=airflow:root requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir -r /opt/airflow/requirements.txt

COPY --chown=airflow:root dags/ /opt/airflow/dags/
COPY --chown=airflow:root include/ /opt/airflow/include/
COPY --chown=airflow:root plugins/ /opt/airflow/plugins/

# The DAGs import the engine as `include.privacy_requests`: the project root must be importable.
# Airflow's default run id pattern admits the run id ".", which its own execution API cannot serve (a task of
# such a run fails in Airflow's code, after the request has claimed its subject): refused at the trigger.
ENV PYTHONPATH=/opt/airflow \
    PRIVACY_REQUESTS_CONFIG_DIR=/opt/airflow/include/privacy \
    AIRFLOW__SCHEDULER__ALLOWED_RUN_ID_PATTERN='^(?!\.$)[A-Za-z0-9_.~:+-]+$'
