"""The synthetic population: deterministic, household-based, province-scale."""
