"""Booking sessions: the pure fold by phone number, the start-of-call decision, and the cache."""
