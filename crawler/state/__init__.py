"""What a crawl keeps in memory and what it spills to disk."""
