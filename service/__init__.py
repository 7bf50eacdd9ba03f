"""object2vec-service: Object2Vec sentence embeddings served over HTTP, with search and a drift monitor."""

__version__ = "0.1.0"
