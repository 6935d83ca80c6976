"""Outbox events: what happened to an order, a licence, a product, an organisation or a payout, written in
the transaction of the change, for the parties it concerns."""
