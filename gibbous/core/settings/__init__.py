"""Gibbous's configuration (Luna's option names) and the node user data it renders."""
