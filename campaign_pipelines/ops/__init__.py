"""Ops and jobs run from the Launchpad."""
