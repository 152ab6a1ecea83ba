"""Projections of the log into the stores people read: the call-record store."""
