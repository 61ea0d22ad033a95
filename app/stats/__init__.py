"""Population statistics for the province's own management and policy work (docs/contract.md, section 14):
counts of residents under the cell-key method, never a resident."""
