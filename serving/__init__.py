"""Serving: batch scoring, alert rules, Slack notifier, scheduler and REST API."""
