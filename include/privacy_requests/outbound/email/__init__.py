"""Vendor erasure emails: rendering (Jinja2 templates) and the message (text + HTML); sending is the Airflow wing's."""
