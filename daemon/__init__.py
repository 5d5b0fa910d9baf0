"""repofeed.daemon — the service side: reading git, the ingest pipeline, and the CLI.

Never imports torch.
"""
