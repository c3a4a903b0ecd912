"""Reading a run: where it lives, its trials and leaderboard, the read-only commands and the HTML report.
Needs neither torch nor Ray Tune."""
