"""Cancellation reasons: reading what customers wrote when they left and mapping it to the taxonomy."""
