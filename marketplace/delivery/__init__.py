"""Delivery: licences, hosted datasets, signed downloads, metered API access, privacy-preserving computation."""
