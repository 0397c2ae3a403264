"""`auditor rules explain`: why one rule did or did not fire for one deal, filter by filter.

Built from the rule's spec (its YAML, as validated) and the filter compiler's own field lookup
and operators, then checked against a replay of the same file; an aggregate's measure is
described from its data. A kind explain does not know is explained by the filters its spec
names (FILTERS) and the replay's verdict."""
