"""One page's content: links from HTML, CSS, PDFs and sitemaps, parsed in worker processes."""
