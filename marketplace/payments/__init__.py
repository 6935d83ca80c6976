"""Payments: the gateway protocol and its implementations (local, Stripe), and the webhook inbox."""
