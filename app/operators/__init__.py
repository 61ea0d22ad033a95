"""Operators: the officers who sign in to the console, their roles, passwords, authenticators and sessions
(docs/contract.md, section 15)."""
