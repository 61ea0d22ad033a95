"""The audit log: one event for every request that touches resident data and every administrative change."""
