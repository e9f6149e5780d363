"""The REST API: risk scores for CRM syncs, ingest and feedback writes, Slack interactivity."""
