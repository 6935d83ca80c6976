"""Use cases that span domains: each flow receives the narrow services it uses and composes them in the
caller's transaction. Domain packages never import a flow."""
