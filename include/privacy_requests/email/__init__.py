"""Vendor erasure emails: rendering (Jinja2 templates) and sending (Airflow SMTP connection)."""
