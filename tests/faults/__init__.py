"""Fault-injection scenarios: real processes on their own ports, pushed past their limits."""
