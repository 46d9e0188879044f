"""Development helpers that never ship with Billy (the mail catcher `make run` starts)."""
