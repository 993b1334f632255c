"""Development tooling, not part of the product: make run's launcher, an embedded Redis, process handling."""
