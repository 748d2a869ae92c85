"""Organiser webhooks: signed deliveries of domain events to organisers' HTTPS endpoints.

signing     Standard Webhooks signatures: new secrets, sign, verify (for receivers and tests)
addresses   the SSRF guard: which URLs may be registered, and a POST pinned to a checked address
endpoints   register, list, delete and re-enable an organiser's endpoints (the API's rules)
queue       where delivery attempts wait: SQS in AWS, an in-memory heap locally and in tests
delivery    queue one message per matching endpoint; one attempt per message, with back-off
"""
