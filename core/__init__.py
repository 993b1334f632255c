"""What every layer shares: error codes, payload validation, metrics, the Redis store."""
