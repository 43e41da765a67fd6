"""Files generated from the code's own descriptions (the options), kept in the repository."""
