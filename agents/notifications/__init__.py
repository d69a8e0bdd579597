"""Notifications (API.md section 11): channels, the events of agent transitions and key expiry, and
their delivery by `manage.py sendalerts`.

- `services`: channels (create, update, delete, send a test), audited, admin only at the API;
- `selectors`: channels and their deliveries as the API and the dashboard list them;
- `sweep`: finds transitions and writes each one's event and deliveries, once, whatever the number
  of senders (the announced state of each agent is locked with SKIP LOCKED while it changes);
- `delivery`: claims due deliveries, sends them (webhooks, email) and records every attempt;
- `webhooks`: URL rules, the SSRF guard (the address connected to is the one checked) and signing;
- `secrets`: how a webhook's signing secret is kept (encrypted: it is needed again to sign).
"""
