"""`python -m agent_billy`: what the npm launcher runs inside its private virtual environment."""

from agent_billy.cli import main

raise SystemExit(main())
