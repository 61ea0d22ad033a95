"""Forms: templates of administrative forms, prefill from the record, and confirmation by a one-time code
sent to the resident's registered mobile (docs/contract.md, 18. Forms: prefill and confirmation)."""
