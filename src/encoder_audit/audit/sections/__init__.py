"""Section builders: pure functions from a family's result (numbers) to a report :class:`Section`."""
