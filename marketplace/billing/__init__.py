"""Recurring billing: usage statements of metered licences and renewals of subscriptions, each collected through
the payment gateway and settled to the provider like an order's payment."""
