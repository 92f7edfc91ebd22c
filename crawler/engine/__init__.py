"""The crawl: the Scrapy spider, its dispatch, settings and middlewares."""
