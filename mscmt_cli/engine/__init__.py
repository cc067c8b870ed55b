"""The training and evaluation engine shared by every command."""
