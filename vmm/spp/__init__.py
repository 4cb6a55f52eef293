"""Sub-page write protection: regions, events, policies and the two backends."""
