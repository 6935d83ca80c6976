"""Trade certificates: a signed document for every completed trade that anyone verifies offline with the exchange's
public keys (its parties, product, money, verdict, deliveries, and the log entry of its completion with an
inclusion proof against a signed tree head)."""
