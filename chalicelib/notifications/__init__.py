"""Notifications: domain events from the table stream, and the emails they send."""
