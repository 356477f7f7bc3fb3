"""`make bench`: the cost of the system's own code against the honest limit
(bare processes making the same hops and Redis calls). See docs/performance.md."""
