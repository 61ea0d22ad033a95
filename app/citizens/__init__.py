"""Citizen endpoints: verify, batch verify, read with field selection, household."""
