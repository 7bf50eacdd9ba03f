"""The Milvus engine (`O2V_VECTOR_STORE=milvus`): engine, expressions, lite; pymilvus is imported only when used."""
