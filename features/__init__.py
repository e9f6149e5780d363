"""Feature jobs: point-in-time engagement, ticket, satisfaction and account signals, snapshots and labels."""
