"""Core of the churn-risk service: settings, database, data contract, ingestion, demo data, CLI."""
