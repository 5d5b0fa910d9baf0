"""repofeed.train — continuous training over a live store: the training stream, the built-in
small GPT and Hugging Face models, the training loop, held-out evaluation and ablations.

It reads the store and never writes it. With ``repofeed.store.datasets`` it is the only place
that imports torch; importing this package itself imports nothing heavy.
"""
