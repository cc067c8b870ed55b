"""Model components (contracts), their composition, and saved run directories."""
