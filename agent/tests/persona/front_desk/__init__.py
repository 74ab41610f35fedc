"""A persona a team could bring: a front desk with its own tool (tests only)."""
