"""A WebSocket import hub for chess games."""
