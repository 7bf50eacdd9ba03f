"""The Milvus engine (`O2V_VECTOR_STORE=milvus`); pymilvus is imported only when it is used."""
