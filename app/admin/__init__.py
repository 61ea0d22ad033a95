"""Administration over REST: clients, grants, purposes, keys; owns only the pending-changes table."""
