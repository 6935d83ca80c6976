"""Demonstration data files (JSON) read by marketplace.demo.records.

organizations.json: the demo's organisations, each with its owner and the fields of its registration.
products.json: the demo catalog. The listable products come first; then two whose samples have gaps, so
their declared completeness (97%) is more than 5% above what S5 measures and the listing stage holds them
for an administrator; then products flawed on purpose, which the listing stage rejects: core data, no cost
declared, industry codes GB/T 4754 lacks, samples that leak a resident identity number (11010519491231002X,
a published test value with a valid GB 11643 check character, which S4 finds)."""
