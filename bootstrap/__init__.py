"""The bootstrap program: CI's identity and state backend, deployed once by a person."""
