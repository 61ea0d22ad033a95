"""Clients, grants, purposes of use, tokens: who may call the gateway, for what, and why."""
