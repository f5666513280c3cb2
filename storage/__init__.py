"""Storage: an index directory is a SQLite document store plus a vector store kept in step.

`Store` opens both; `DocumentStore` is the database (the source of truth); `VectorStore` is the
seam a vector engine implements (`FaissVectorStore` here). No module here imports the layers
above (indexer, search, training, the API, the CLI or the web app).
"""
