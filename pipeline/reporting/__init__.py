"""What a run produced, for people: the push decision, per-task per-slice metrics, the console summary
and the HTML report."""
