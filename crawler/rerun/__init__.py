"""Re-runs: the fetch cache of conditional questions and the replay of a stored crawl."""
