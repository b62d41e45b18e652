"""tripletutils: helpers for the Triplet Loss book."""

__version__ = "0.1.0"
