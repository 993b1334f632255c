"""What every layer shares: error codes, payload validation, metrics, structured logs, the Redis store."""
