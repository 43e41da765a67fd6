"""Admission: the webhook's mutations and validations."""
