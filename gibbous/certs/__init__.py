"""TLS material for the webhook: a CA and a serving certificate signed by it."""
