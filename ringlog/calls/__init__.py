"""Calls: their state as a pure fold, what they owe (ABT, records), and when to place them."""
