"""repofeed.hooks — git hook templates and their installer (issue 3: `repofeed install`)."""
