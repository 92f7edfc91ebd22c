"""HTTP/1.1 for the crawl and the re-run pass: download handler, response reader, client."""
