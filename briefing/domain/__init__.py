"""Pure values and rules: states, the values passed between stages, addresses, tokens."""
