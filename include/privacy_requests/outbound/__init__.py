"""Everything sent out, exactly once: vendor erasure emails, digests and their queue, vendor confirmations,
webhooks, and the email templates (``email/``). The side-effecting call is handed in."""
