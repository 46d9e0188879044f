"""agent-billy: the command-line client of an Agent Billy instance (login, status, logout, --mcp)."""

__version__ = "0.1.0"
